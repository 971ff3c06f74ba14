"""The pytest plugin: bad option values stop the run at start-up; profiles load right.

Each case runs pytest in a subprocess (pytester) on a tiny test file, so
option parsing and profile loading happen exactly as for a user.
"""

from __future__ import annotations

import pytest

USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


@pytest.fixture
def run(pytester, monkeypatch):
    pytester.makepyfile(test_probe="def test_probe():\n    pass\n")

    def _run(*args, env=None):
        for k in ("CI", "TF_BUILD", "GITHUB_ACTIONS"):
            monkeypatch.delenv(k, raising=False)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)

    return _run


@pytest.mark.parametrize(
    "option, message",
    [
        ("--osd-backend=nope", "--osd-backend: unknown backend 'nope'"),
        ("--osd-backend=no_such_pkg.mod:Thing", "cannot import 'no_such_pkg.mod'"),
        ("--osd-backend=osdconform.backends:NoSuchThing", "has no attribute 'NoSuchThing'"),
        ("--osd-backend=osdconform.scenario:Scenario", "has no 'capabilities'"),
        ("--osd-world-sizes=1,x", "--osd-world-sizes: expected integers like 1,2,4, got '1,x'"),
        ("--osd-world-sizes=0,2", "--osd-world-sizes: sizes must be >= 1"),
    ],
)
def test_bad_option_stops_the_run_with_one_line(run, option, message):
    result = run(option)
    assert result.ret == USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines


def test_malformed_xfails_file_names_file_and_line(run, pytester):
    bad = pytester.makefile(".txt", xfails="# comment\nroundtrip | s.world_size == | x | y | z\n")
    result = run(f"--osd-xfails={bad}")
    assert result.ret == USAGE_ERROR
    assert any(f"{bad}:2: predicate" in line for line in result.errlines), result.errlines


def test_xfails_file_with_missing_fields(run, pytester):
    bad = pytester.makefile(".txt", xfails="roundtrip | True | only three\n")
    result = run(f"--osd-xfails={bad}")
    assert result.ret == USAGE_ERROR
    assert any("expected 'property | predicate | match | reason | reproducer'" in l for l in result.errlines)


def test_cuda_device_without_gpu_is_a_usage_error(run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run("--osd-device=cuda")
    assert result.ret == USAGE_ERROR
    assert any("torch sees no CUDA device" in l for l in result.errlines), result.errlines


PROFILE_PROBE = """
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

def test_profile():
    s = settings.default
    print("PROFILE", s.max_examples, s.derandomize, type(s.database).__name__)
    assert s.deadline is None
"""


def _profile_line(result):
    lines = [l for l in result.outlines if "PROFILE " in l]
    assert lines, result.outlines
    return lines[0].split("PROFILE ", 1)[1].split()


@pytest.mark.parametrize(
    "args, env, expected",
    [
        ((), {}, ["10", "False"]),  # dev by default
        ((), {"CI": "true"}, ["25", "True", "NoneType"]),  # ours, not Hypothesis's own ci
        (("--hypothesis-profile=ci",), {}, ["25", "True", "NoneType"]),
        # nightly must not inherit derandomize / no-database from an auto-loaded ci profile
        (("--hypothesis-profile=nightly",), {"CI": "true"}, ["300", "False", "DirectoryBasedExampleDatabase"]),
    ],
)
def test_profiles(run, pytester, args, env, expected):
    pytester.makepyfile(test_probe=PROFILE_PROBE)
    result = run("-s", *args, env=env)
    assert result.ret == 0, result.outlines + result.errlines
    got = _profile_line(result)
    assert got[: len(expected)] == expected


def test_nightly_database_path_can_be_set(run, pytester, tmp_path):
    pytester.makepyfile(
        test_probe="from hypothesis import settings\n"
        "def test_db():\n    print('DB', settings.default.database.path)\n"
    )
    result = run("-s", "--hypothesis-profile=nightly", env={"OSDCONFORM_HYPOTHESIS_DB": str(tmp_path / "db")})
    assert result.ret == 0
    assert any(f"DB {tmp_path / 'db'}" in l for l in result.outlines), result.outlines
