"""``osdconform run``: how its arguments split between it and pytest, and when it scales out."""

from __future__ import annotations

import pytest

from osdconform.cli import _run
from osdconform.harness import under_torchrun


def test_selections_are_relative_to_the_suites_folder_and_pytest_options_pass_through():
    where, is_clone = _run.suites_dir()
    assert is_clone and (where / "test_roundtrip.py").is_file()
    args, passthrough = _run.pytest_args(["test_roundtrip.py::test_roundtrip", "--", "-k", "full", "-x"])
    assert passthrough[0] == f"{where / 'test_roundtrip.py'}::test_roundtrip"
    assert passthrough[-3:] == ["-k", "full", "-x"]
    _, passthrough = _run.pytest_args(["--", "-n", "auto"])
    assert passthrough[0] == str(where) and passthrough[-2:] == ["-n", "auto"]


def test_pytest_options_before_the_separator_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        _run.pytest_args(["-k", "full"])
    assert exc.value.code == 2
    assert "pytest options go after --" in capsys.readouterr().err


def test_unknown_suite_is_named_with_the_ones_that_exist():
    with pytest.raises(FileNotFoundError, match=r"no suite 'test_nope\.py' in .*test_roundtrip\.py"):
        _run.pytest_args(["test_nope.py"])


@pytest.mark.parametrize("args, uses", [
    (["-n", "2"], True), (["-nauto"], True), (["--numprocesses=2"], True), (["--dist", "load"], True),
    (["-k", "none and full"], False), (["-p", "no:xdist"], False), (["--osd-backend=x"], False),
])
def test_xdist_options_are_recognised(args, uses):
    assert _run._uses_xdist(args) is uses


def test_torchrun_is_recognised_by_its_environment():
    assert not under_torchrun({})
    assert under_torchrun({"TORCHELASTIC_RUN_ID": "x"})
    assert under_torchrun({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert not under_torchrun({"RANK": "0", "WORLD_SIZE": "2"})
