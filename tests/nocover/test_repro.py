"""Reproducer scripts: a failing example leaves a script that fails while the bug exists.

The suite runs (a nested pytest session, as a user would) against
``helpers.faulty_backends:DropsStateOnSet`` at world size 2; the failure must name a
script, the script must hold Hypothesis's final shrunk example, exit 1 when run
on its own (no Hypothesis, no warm-world harness) and exit 0 once the fault is
gone (the same script pointed at the fault's healthy parent backend).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from helpers.suite_runner import ROOT, TESTS, run_suite
from osdconform import properties
from osdconform.backends import StateOptions
from osdconform.reporting import _repro
from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, PlanSpec, Scenario

pytestmark = pytest.mark.slow

HEALTHY = "osdconform.backends.reference:ReferenceBackend"


def run_repro(*args: str, timeout: float = 300) -> tuple[int, str]:
    """``osdconform repro ARGS`` (through ``python -m osdconform.reporting._repro``, from the repository root)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "osdconform.reporting._repro", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """One suite run that fails on DropsStateOnSet: (output, repro folder)."""
    repro_dir = tmp_path_factory.mktemp("repro")
    code, out = run_suite(
        "--osd-backend=helpers.faulty_backends:DropsStateOnSet", "--osd-world-sizes=2",
        "--hypothesis-profile=ci", "--osd-timeout=30", f"--osd-repro-dir={repro_dir}",
        target="test_roundtrip.py::test_roundtrip[full]",
    )
    assert code == 1, out[-4000:]
    return out, repro_dir


@pytest.fixture(scope="module")
def script(failing_run):
    out, repro_dir = failing_run
    m = re.search(r"reproducer \(no Hypothesis; exits 1 while this fails\): python (\S+\.py)", out)
    assert m, out[-4000:]
    return m.group(1)


def test_failure_names_a_script_in_the_repro_folder(failing_run, script):
    _, repro_dir = failing_run
    assert os.path.dirname(script) == str(repro_dir)
    assert os.path.basename(script) == "test_roundtrip__test_roundtrip_full.py"
    assert sorted(os.listdir(repro_dir)) == [os.path.basename(script)]  # one file per test


def test_script_holds_the_final_shrunk_example(failing_run, script):
    out, _ = failing_run
    reported = re.findall(r"as code: (Scenario\(.*\))", out)[-1]
    with open(script) as f:
        text = f.read()
    assert f"SCENARIO = {reported}\n" in text
    meta = _repro.read_metadata(script)
    assert meta["TEST"].endswith("test_roundtrip.py::test_roundtrip[full]"), meta
    assert meta["PROPERTY"] == "roundtrip" and meta["BACKEND"] == "helpers.faulty_backends:DropsStateOnSet"
    assert meta["STEP"] == "osdconform.properties._roundtrip:roundtrip"
    assert not re.search(r"^\s*(import|from) hypothesis", text, re.M), "the script must not need Hypothesis"


def test_script_exits_1_while_the_bug_exists(script):
    code, out = run_repro(script)
    assert code == 1, out[-4000:]
    assert re.search(r"FAILED: .*OSD mismatch at state\['layers\.\d+\.weight'\]: keys differ: missing "
                     r"\['(exp_avg_sq|momentum_buffer)'\]", out, re.S), out[-4000:]
    assert re.search(r"rank [01]: OSDMismatch in phase 'compare'", out), out[-4000:]


def test_script_exits_0_once_the_fault_is_gone(script, tmp_path):
    with open(script) as f:
        text = f.read()
    fixed = tmp_path / "fixed.py"
    fixed.write_text(text.replace("BACKEND = 'helpers.faulty_backends:DropsStateOnSet'", f"BACKEND = {HEALTHY!r}"))
    assert _repro.read_metadata(str(fixed))["BACKEND"] == HEALTHY
    code, out = run_repro(str(fixed))
    assert code == 0, out[-4000:]
    assert "PASSED: the property holds for this scenario" in out


def test_list_shows_the_script(failing_run, script):
    _, repro_dir = failing_run
    code, out = run_repro("--list", str(repro_dir))
    assert code == 0, out
    assert script in out and "test_roundtrip[full]: roundtrip on helpers.faulty_backends:DropsStateOnSet (cpu)" in out
    code, out = run_repro("--list", str(repro_dir / "nothing-here"))
    assert code == 1 and "no folder" in out


def test_hang_script_times_out_and_names_the_phase(tmp_path):
    """A reproducer of a hang exits 1 after its timeout, with each rank's phase."""
    scenario = Scenario(
        seed=0, world_size=2, model=MLPSpec(dims=(2, 2), bias=(True,), dtype="float32"),
        optimizers=(OptimizerSpec(name="adam", groups=(GroupSpec(params=("layers.0.weight", "layers.0.bias"),
                                                                 hparams=()),)),),
        plan=PlanSpec(kind="ddp"), steps=1,
    )
    path = _repro.write_script(
        str(tmp_path), "suites/test_roundtrip.py::test_roundtrip[full-ddp]", prop="roundtrip",
        step=properties.roundtrip, scenario=scenario, backend_spec="helpers.faulty_backends:HangsOnSet",
        options=StateOptions(full=True),
    )
    # The timeout starts once every rank has joined; the example takes ~1 s.
    code, out = run_repro(path, "--timeout", "10", timeout=600)
    assert code == 1, out[-4000:]
    assert re.search(r"FAILED: hang: no answer after 10 s \(last phases: rank 0 in 'set', "
                     r"rank 1 in '(compare|reference gather \(loaded\))'\)", out), out[-4000:]
    assert "in barrier" in out, out[-4000:]  # rank 0's stack dump (faulthandler)


@dataclass(frozen=True)
class _OddRepr:
    """A value whose repr does not rebuild it (so the script must carry a pickle)."""

    x: int

    def __repr__(self) -> str:
        return f"<odd {self.x}>"


def test_scenario_code_rebuilds_or_falls_back_to_a_pickle():
    scenario = Scenario(
        seed=3, world_size=1, model=MLPSpec(dims=(1, 1), bias=(False,), dtype="float32"),
        optimizers=(OptimizerSpec(name="sgd", groups=(GroupSpec(params=("layers.0.weight",), hparams=()),)),),
    )
    code, imports = _repro._as_code("SCENARIO", scenario)
    assert code == f"SCENARIO = {scenario!r}\n"
    assert ("osdconform.scenario._spec", "Scenario") in imports
    namespace: dict = {}
    exec(_repro._import_lines(imports) + "\n" + code, namespace)
    assert namespace["SCENARIO"] == scenario

    code, imports = _repro._as_code("VALUE", _OddRepr(5))
    assert "pickle.loads" in code and "# <odd 5>" in code
    namespace = {}
    exec(_repro._import_lines(imports) + "\n" + code, namespace)
    assert namespace["VALUE"] == _OddRepr(5)


def test_script_names_are_one_per_test():
    assert _repro.script_name("suites/test_roundtrip.py::test_fidelity[fsdp2]") == "test_roundtrip__test_fidelity_fsdp2.py"
    assert _repro.script_name("a/b/test_x.py::test_y[full-none]") == "test_x__test_y_full-none.py"


_DIRECTORY_STEP = '''
import os
import torch.distributed as dist


def writes_into(ctx, scenario, backend_spec, options, directory, tag):
    """Every rank sees the same, initially empty directory; the other extra comes as is."""
    assert tag == "x", tag
    assert os.path.isdir(directory)
    dist.barrier()
    open(os.path.join(directory, f"rank{ctx.rank}"), "w").close()
    dist.barrier()
    assert sorted(os.listdir(directory)) == [f"rank{r}" for r in range(ctx.world_size)]
'''


def test_directory_argument_becomes_a_fresh_shared_directory(tmp_path, monkeypatch):
    """A step's extra arguments: an example's (gone) directory is replaced by a fresh one."""
    (tmp_path / "dir_step.py").write_text(_DIRECTORY_STEP)
    monkeypatch.syspath_prepend(str(tmp_path))
    import dir_step

    checkpoint = tmp_path / "example-checkpoint"
    checkpoint.mkdir()
    (checkpoint / "stale").write_text("left over from the example")
    scenario = Scenario(
        seed=0, world_size=2, model=MLPSpec(dims=(1, 1), bias=(False,), dtype="float32"),
        optimizers=(OptimizerSpec(name="sgd", groups=(GroupSpec(params=("layers.0.weight",), hparams=()),)),),
    )
    path = _repro.write_script(
        str(tmp_path / "repro"), "suites/test_x.py::test_y", prop="y", step=dir_step.writes_into,
        scenario=scenario, backend_spec=HEALTHY, options=StateOptions(), extra=(str(checkpoint), "x"),
    )
    assert "EXTRA = (None, 'x')\nPRIOR = ()\nFRESH_DIRECTORIES = (0,)" in open(path).read().replace(
        "# Positions in EXTRA of directories (an example's checkpoint folder): each run uses a fresh one.\n", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    code, out = run_repro(path)
    assert code == 0, out[-4000:]


_WORLDS_STEP = '''
import os
import torch.distributed as dist


def world(ctx, scenario, backend_spec, options, directory, index):
    """World `index` finds what every earlier world wrote in the shared directory, then writes."""
    want = sorted(f"world{i}-rank{r}" for i in range(index) for r in range(2 if i == 0 else 3))
    assert sorted(os.listdir(directory)) == want, (sorted(os.listdir(directory)), want)
    dist.barrier()
    open(os.path.join(directory, f"world{index}-rank{ctx.rank}"), "w").close()
'''


def test_an_example_of_several_worlds_runs_them_in_order_sharing_its_directory(tmp_path, monkeypatch):
    """A lifecycle that resharded ran in worlds of 2, then 3 ranks: its script runs both, in order,
    each in a world of its own size, and the later one reads what the earlier one wrote."""
    (tmp_path / "worlds_step.py").write_text(_WORLDS_STEP)
    monkeypatch.syspath_prepend(str(tmp_path))
    import worlds_step

    checkpoint = tmp_path / "example-checkpoint"
    checkpoint.mkdir()
    scenario = Scenario(
        seed=0, world_size=2, model=MLPSpec(dims=(1, 1), bias=(False,), dtype="float32"),
        optimizers=(OptimizerSpec(name="sgd", groups=(GroupSpec(params=("layers.0.weight",), hparams=()),)),),
    )
    first, second = (scenario, (str(checkpoint), 0)), (scenario.replace(world_size=3), (str(checkpoint), 1))
    path = _repro.write_script(
        str(tmp_path / "repro"), "suites/test_x.py::test_y", prop="y", step=worlds_step.world,
        scenario=second[0], backend_spec=HEALTHY, options=StateOptions(), extra=second[1], prior=(first,),
    )
    assert "It runs in 2 worlds one after another (world sizes 2 first)." in open(path).read()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    code, out = run_repro(path)
    assert code == 0, out[-4000:]
    assert "on 2 rank(s) (world 1 of 2)" in out and "on 3 rank(s) (world 2 of 2)" in out, out
    # The second world fails if the first did not run before it (its files are missing).
    path = _repro.write_script(
        str(tmp_path / "repro2"), "suites/test_x.py::test_y", prop="y", step=worlds_step.world,
        scenario=second[0], backend_spec=HEALTHY, options=StateOptions(), extra=second[1],
    )
    code, out = run_repro(path)
    assert code == 1 and "AssertionError" in out, out[-4000:]
