"""The ``osdconform`` command: report, backends, and the run/repro dispatch; entry-point backends.

Most cases call `osdconform.cli.main` in-process; one per subcommand goes
through ``python -m osdconform`` in a subprocess as a user (or a nightly
job) would.  Entry-point backends are tested twice: the registry with a
constructed `importlib.metadata.EntryPoint`, and a really installed one (a
``*.dist-info`` directory with ``entry_points.txt`` on the path, which is
what pip writes) seen by ``osdconform backends`` and ``--osd-backend``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest

from helpers.installed_backend import install_entry_point_backend
from osdconform.backends import BackendSpecError, entry_point_backends, known_backends, resolve_backend
from osdconform.backends._registry import ADAPTERS, BUILTIN
from osdconform.backends.reference import ReferenceBackend
from osdconform.cli import main
from osdconform.reporting._report import RunReport

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _report(path, *, failed: int, torch: str = "2.13.0+cpu"):
    r = RunReport(backend="reference", backend_spec="reference", torch=torch, device="cpu",
                  profile="ci", world_sizes=[1, 2], started="2026-11-23 02:00 UTC", duration=12.0)
    r.count("roundtrip", ["plan:none", "form:full"], "passed", n=20, time=2.0)
    if failed:
        r.count("roundtrip", ["plan:fsdp2", "form:sharded"], "failed", n=failed, time=1.0)
    else:
        r.count("roundtrip", ["plan:fsdp2", "form:sharded"], "passed", n=5, time=1.0)
    r.write(path)
    return path


def _python_m(*args, env_extra=None, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [*(env_extra or []), ROOT, env.get("PYTHONPATH", "")] if p)
    return subprocess.run([sys.executable, "-m", "osdconform", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


# --------------------------------------------------------------------------- report


def test_report_command_renders_matrix_and_changes(tmp_path):
    old = _report(tmp_path / "old.json", failed=0, torch="2.12.0+cpu")
    new = _report(tmp_path / "new.json", failed=3)
    proc = _python_m("report", str(new), "--baseline", str(old))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("# osdconform conformance report\n")
    assert "| plan:fsdp2 | FAIL 3/3 |" in out
    assert "### New failures (3)" in out
    assert "- roundtrip / plan:fsdp2 (reference): pass 5 -> FAIL 3/3" in out
    assert "Baseline: backend `reference`, torch 2.12.0+cpu" in out


def test_report_can_fail_a_job_on_new_failures_and_write_a_file(tmp_path, capsys):
    old = _report(tmp_path / "old.json", failed=0)
    new = _report(tmp_path / "new.json", failed=2)
    md = tmp_path / "out" / "matrix.md"
    md.parent.mkdir()
    code = main(["report", str(new), "--baseline", str(old), "-o", str(md), "--fail-on-new-failures"])
    assert code == 1
    assert "new failures since the baseline" in capsys.readouterr().err
    assert "### New failures (3)" in md.read_text()  # 3 cells: all, plan:fsdp2, form:sharded
    # The other way round nothing is new: exit 0.
    assert main(["report", str(old), "--baseline", str(new), "-o", str(md), "--fail-on-new-failures"]) == 0
    assert "### Fixed (3)" in md.read_text()


def test_report_of_a_file_that_is_not_a_report_is_one_line(tmp_path, capsys):
    bad = tmp_path / "junit.xml"
    bad.write_text("<testsuites/>")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"osdconform report: {bad} is not JSON: Expecting value at line 1\n"


# --------------------------------------------------------------------------- backends


def test_backends_lists_builtins_with_capabilities(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "reference  [built-in]  osdconform.backends.reference:ReferenceBackend" in out
    assert "torch-dsd  [built-in]  osdconform.backends.torch_dsd:TorchDSDBackend" in out
    assert main(["backends", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    caps = ReferenceBackend.capabilities
    declared = rows["reference"]["capabilities"]
    assert set(declared) == {f.name for f in dataclasses.fields(caps)}
    assert declared["plans"] == sorted(caps.plans)
    assert declared["full"] is caps.full and declared["sharded"] is caps.sharded
    assert declared["max_world_size"] == caps.max_world_size


def _constructed(name, value):
    return metadata.EntryPoint(name=name, value=value, group="osdconform.backends")


def test_registry_resolves_an_entry_point_name():
    eps = [
        _constructed("mine", "osdconform.backends.reference:ReferenceBackend"),
        _constructed("torch-dsd", "osdconform.backends.reference:ReferenceBackend"),  # shadowing a built-in
        metadata.EntryPoint(name="other-group", value="x:y", group="something.else"),
    ]
    assert resolve_backend("mine", entry_points=eps) is ReferenceBackend
    assert set(entry_point_backends(eps)) == {"mine"}  # built-ins win; other groups ignored
    known = known_backends(eps)
    assert known["mine"].origin == "entry point" and known["torch-dsd"].origin == "built-in"
    names = re.escape(", ".join([*sorted(BUILTIN), *sorted({*ADAPTERS, "mine"})]))  # shipped adapters too
    with pytest.raises(BackendSpecError, match=rf"unknown backend 'nope': use a known name \({names}\)"):
        resolve_backend("nope", entry_points=eps)
    broken = [_constructed("broken", "no_such_module_xyz:Thing")]
    with pytest.raises(BackendSpecError, match="backend 'broken': cannot import 'no_such_module_xyz'"):
        resolve_backend("broken", entry_points=broken)


def test_installed_entry_point_backend_is_listed(tmp_path):
    site = install_entry_point_backend(tmp_path)
    proc = _python_m("backends", "--json", env_extra=[str(site)])
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    fake = rows["fake-backend"]
    assert fake["origin"] == "entry point (fake-osd-backend)"
    assert fake["target"] == "fake_osd_backend:FakeBackend"
    assert fake["capabilities"]["sharded"] is False and fake["capabilities"]["max_world_size"] == 2


def test_a_broken_entry_point_is_listed_with_its_error_and_exit_1(tmp_path):
    site = install_entry_point_backend(tmp_path, name="broken", target="fake_osd_backend:NoSuchClass")
    proc = _python_m("backends", env_extra=[str(site)])
    assert proc.returncode == 1
    assert "broken  [entry point (fake-osd-backend)]  fake_osd_backend:NoSuchClass" in proc.stdout
    assert "cannot load: backend 'broken': module 'fake_osd_backend' has no attribute 'NoSuchClass'" in proc.stdout


# --------------------------------------------------------------------------- run / repro dispatch


@pytest.mark.parametrize("command, module", [("run", "osdconform.cli._run"), ("repro", "osdconform.reporting._repro")])
def test_run_and_repro_dispatch_to_their_modules(command, module, capsys):
    if importlib.util.find_spec(module) is not None:
        # Installed: the subcommand is that module's, and so is its --help.
        try:
            code = main([command, "--help"])
        except SystemExit as exc:  # argparse's --help
            code = exc.code
        assert code in (0, None)
        assert capsys.readouterr().out
    else:
        assert main([command, "--anything"]) == 2
        assert capsys.readouterr().err == f"osdconform {command}: not available in this installation ({module} is missing)\n"


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in ("run", "report", "repro", "backends"):
        assert command in out
