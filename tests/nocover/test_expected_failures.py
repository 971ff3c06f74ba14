"""Expected failures: a matching failure is tolerated, anything else is not; XPASS and stale entries are reported.

Runs the real round-trip suite (a nested pytest session, `run_suite`) with an
expected-failures file written by the test, against a seeded fault
(tests/helpers/faulty_backends.py) or the fault-free reference.  Then checks the
shipped files: every entry names a reproducer that exists, and every
reproducer still reproduces (exits 1) on the installed torch; the scripts run as
their own processes, forked from one that has imported torch alone
(`helpers/scripts.py`).
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest
import torch

import osdconform
from helpers.scripts import run_script
from helpers.suite_runner import run_suite
from osdconform.expected_failures import SHIPPED_DIR, load_xfails

pytestmark = pytest.mark.slow


def entry(prop: str, when: str, match: str, reason: str, reproducer: str) -> str:
    """One expected-failures entry: five field lines (entries are separated by a blank line)."""
    return f"property: {prop}\nwhen: {when}\nmatch: {match}\nreason: {reason}\nreproducer: {reproducer}\n"


def run(backend: str, xfails_text: str, tmp_path, *extra: str) -> tuple[int, str]:
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(xfails_text)
    return run_suite(
        f"--osd-backend={backend}",
        "--osd-world-sizes=1", "--hypothesis-profile=ci", f"--osd-xfails={xfails}", *extra,
        target="test_roundtrip.py::test_roundtrip[full]",
    )


def test_matching_failures_are_expected_and_counted(tmp_path):
    code, out = run(
        "helpers.faulty_backends:DropsStateOnSet",
        "# with a step, the fault drops a state entry of every parameter that has state\n"
        + entry("roundtrip", 'o.full and s.steps > 0 and "stateful group" in s.features',
                "keys differ: missing", "seeded fault", "tests/helpers/faulty_backends.py"),
        tmp_path,
    )
    assert code == 0, out[-4000:]
    assert re.search(r"\b1 passed\b", out), out[-2000:]
    counted = re.search(r"(\d+) example\(s\) failed as expected: .*xfails\.txt:2: roundtrip", out)
    assert counted and int(counted.group(1)) >= 1, out[-2000:]


def test_a_failure_without_the_entry_text_is_a_real_failure(tmp_path):
    report = tmp_path / "report.json"
    code, out = run(
        "helpers.faulty_backends:DropsStateOnSet",
        entry("roundtrip", 'o.full and s.steps > 0 and "stateful group" in s.features', "values differ",
              "an unrelated known bug", "n/a"),
        tmp_path,
        f"--osd-report={report}",
    )
    assert code == 1, out[-4000:]
    assert re.search(r"\b1 failed\b", out) and "keys differ: missing" in out, out[-4000:]
    # ... and a failure in the JSON report: the test, and the examples of its cells.
    data = json.loads(report.read_text())
    assert [(t["nodeid"].split("::")[-1], t["outcome"]) for t in data["tests"]] == [
        ("test_roundtrip[full]", "failed")
    ]
    cells = {c["feature"]: c for c in data["cells"] if c["property"] == "roundtrip"}
    assert cells["all"]["failed"] >= 1 and cells["all"]["xfailed"] == 0
    by_plan = sum(c["failed"] for f, c in cells.items() if f.startswith("plan:"))
    assert cells["form:full"]["failed"] == by_plan == cells["all"]["failed"]
    assert data["exit_status"] == 1 and data["profile"] == "ci"


def test_an_entry_that_now_passes_is_an_xpass_and_fails(tmp_path):
    code, out = run(
        "reference",
        entry("roundtrip", "s.world_size == 1", "anything", "a bug that was fixed", "n/a"),
        tmp_path,
    )
    assert code == 1, out[-4000:]
    assert "XPASS: this example passed though an expected failure covers it" in out, out[-4000:]
    assert "xfails.txt:1: roundtrip where s.world_size == 1" in out, out[-4000:]
    # No torch bound above: the upgrade may have fixed it, and the message says how to record that.
    assert re.search(r"fixed in torch \d+\.\d+\.\d+\? If so, bound the entry: 'torch: <", out), out[-4000:]


def test_an_entry_bounded_to_other_torch_releases_is_off(tmp_path):
    """The same entry, for torch < 1.0 only: on this torch it covers nothing, so no XPASS."""
    code, out = run(
        "reference",
        entry("roundtrip", "s.world_size == 1", "anything", "a bug of old torch", "n/a") + "torch: <1.0\n",
        tmp_path,
    )
    assert code == 0 and re.search(r"\b1 passed\b", out), out[-4000:]
    assert "XPASS" not in out and "matched no example" not in out, out[-4000:]


# --------------------------------------------------------------------------- outside ci: XPASS
# reported, unmatched entries warned about, and all of it in the JSON report,
# the same with and without xdist.

CAPPED_BACKEND = """\
from osdconform.backends import Capabilities
from helpers.faulty_backends import DropsStateOnSet


class FullOnlyDropsState(DropsStateOnSet):
    '''The seeded fault, on a backend that declares only full OSDs and plan none.'''

    name = "full-only-drops-state"
    capabilities = Capabilities(full=True, sharded=False, plans=frozenset({"none"}))
"""

# Entries start at lines 1, 7, 13, 19 and 25; the last can only match in the
# full space, so this core run does not warn about it.
NIGHTLY_XFAILS = "\n".join([
    entry("roundtrip", "o.full and s.steps > 0", "keys differ: missing", "seeded fault", "tests/helpers/faulty_backends.py"),
    entry("fidelity", "True", "anything", "a get bug fixed meanwhile", "n/a"),
    entry("roundtrip", '"optimizer:no-such-optimizer" in s.features', "x", "a stale entry", "n/a"),
    entry("reshard", "True", "x", "a property this run does not run", "n/a"),
    entry("roundtrip", '"optimizer:lbfgs" in s.features', "x", "a full-space entry", "n/a") + "space: full\n",
])


NIGHTLY_TARGETS = (
    "test_roundtrip.py::test_roundtrip[full]",
    "test_roundtrip.py::test_roundtrip[sharded]",
    "test_fidelity.py::test_fidelity[full]",
)


def _nightly_like_run(tmp_path, monkeypatch, *extra) -> tuple[int, str, dict]:
    (tmp_path / "capped_backend.py").write_text(CAPPED_BACKEND)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(NIGHTLY_XFAILS)
    report = tmp_path / f"report{len(extra)}.json"
    code, out = run_suite(
        "--osd-backend=capped_backend:FullOnlyDropsState", "--osd-world-sizes=1",
        "--hypothesis-profile=dev", "--hypothesis-seed=1", f"--osd-xfails={xfails}", f"--osd-report={report}",
        *extra,
        target=NIGHTLY_TARGETS,
        in_process=False,  # capped_backend.py is imported from this test's own folder, by name
    )
    return code, out, json.loads(report.read_text()) if report.exists() else {}


def _cells(report: dict) -> dict:
    return {(c["property"], c["feature"]): c for c in report["cells"]}


def test_outside_ci_xpass_is_reported_not_failed_and_unmatched_entries_are_warned(tmp_path, monkeypatch):
    code, out, report = _nightly_like_run(tmp_path, monkeypatch)
    assert code == 0, out[-4000:]
    assert re.search(r"\b2 passed, 1 skipped\b", out), out[-2000:]
    xpass = re.search(r"XPASS +(\d+) example\(s\) passed though an expected failure covers them .*xfails\.txt:7: fidelity", out)
    assert xpass and int(xpass.group(1)) == 10, out[-3000:]  # all of the dev profile's 10 examples
    assert re.search(r"\d+ example\(s\) failed as expected: .*xfails\.txt:1: roundtrip", out), out[-3000:]
    warned = re.findall(r"WARNING: expected-failure entry matched no example of this run .*?(xfails\.txt:\d+)", out)
    assert warned == ["xfails.txt:13", "xfails.txt:19"], out[-3000:]

    # The JSON report says the same, per property and feature.
    cells = _cells(report)
    roundtrip, fidelity = cells[("roundtrip", "all")], cells[("fidelity", "all")]
    assert roundtrip["failed"] == 0 and roundtrip["xfailed"] >= 1 and roundtrip["xpassed"] == 0
    assert roundtrip["passed"] + roundtrip["xfailed"] == roundtrip["examples"] == 10
    assert roundtrip["unsupported"] == 1  # test_roundtrip[sharded]
    assert cells[("roundtrip", "form:sharded")]["unsupported"] == 1
    assert cells[("roundtrip", "form:sharded")]["examples"] == 0
    assert sum(c["examples"] for (p, f), c in cells.items() if p == "roundtrip" and f.startswith("plan:")) == 10
    assert (fidelity["xpassed"], fidelity["examples"]) == (10, 10)
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in report["tests"]}
    assert outcomes == {
        "test_roundtrip[full]": "passed",
        "test_roundtrip[sharded]": "unsupported",
        "test_fidelity[full]": "passed",
    }
    assert report["profile"] == "dev" and report["backend"] == "full-only-drops-state"
    assert report["hypothesis_seed"] == "1"
    unmatched = [re.search(r"xfails\.txt:\d+", u).group() for u in report["expected_failures"]["unmatched"]]
    assert unmatched == ["xfails.txt:13", "xfails.txt:19"]

    # Under xdist the controller adds up the workers' numbers to the same report.
    code2, out2, report2 = _nightly_like_run(tmp_path, monkeypatch, "-n", "2")
    assert code2 == 0, out2[-4000:]

    def without_time(r):
        return {k: {f: v for f, v in c.items() if f != "time"} for k, c in _cells(r).items()}

    assert without_time(report2) == without_time(report)
    assert report2["expected_failures"]["unmatched"] == report["expected_failures"]["unmatched"]
    assert sorted(t["outcome"] for t in report2["tests"]) == sorted(outcomes.values())


# --- the shipped entries and their reproducers --------------------------------

SHIPPED = sorted(p for p in SHIPPED_DIR.glob("*.txt"))
REPRO_DIR = SHIPPED_DIR / "repro"
SHIPPED_REPROS = sorted(REPRO_DIR.glob("*.py"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_entry_names_a_reproducer_script_that_exists(path):
    entries = load_xfails(path)
    assert entries, f"{path} has no entries"
    for entry in entries:
        script = (path.parent / entry.reproducer).resolve()
        assert script.is_file(), f"{entry.where}: reproducer {entry.reproducer!r} is not a file"


#: Where the plans name the torch bugs they refuse to draw (they cannot even train).
PLAN_REFUSALS = Path(osdconform.__file__).parent / "scenario" / "_refusals.py"
#: Where the strategies leave out what torch cannot train (a scheduler an optimizer cannot run under).
SPACE_FITS = Path(osdconform.__file__).parent / "strategies" / "_optimizers.py"


def test_every_reproducer_script_is_used_by_an_entry_or_a_plan_refusal():
    used = {(p.parent / e.reproducer).resolve() for p in SHIPPED for e in load_xfails(p)}
    refusals = PLAN_REFUSALS.read_text() + SPACE_FITS.read_text()
    unused = [s.name for s in SHIPPED_REPROS if s.resolve() not in used and f"repro/{s.name}" not in refusals]
    assert not unused, f"reproducers no entry (or plan refusal) names: {unused}"


def _missing_frameworks(backends: set[str]) -> list[str]:
    """Why the shipped adapters among `backends` cannot run here (their framework is missing).

    Empty if any of them can (a script cited by a built-in's entries always runs)."""
    from osdconform.backends import BackendNotInstalled, resolve_backend
    from osdconform.backends._registry import ADAPTERS

    missing = []
    for name in sorted(backends):
        if name not in ADAPTERS:
            return []
        try:
            resolve_backend(name)  # checks the adapter's `requires`, as a run does
        except BackendNotInstalled as exc:
            missing.append(str(exc))
        else:
            return []
    return missing


@pytest.mark.parametrize("script", SHIPPED_REPROS, ids=lambda p: p.stem)
def test_shipped_reproducer_fails_while_the_bug_exists(script):
    """Each reproducer exits 1 on this torch; exit 0 means torch fixed it: drop the entry.

    A script killed by a signal is run once more: under load, torch's gloo
    teardown at interpreter exit now and then aborts ("terminate called
    without an active exception", SIGABRT) after the script has reproduced
    its bug (seen once in CI with fsdp1_optim_state_dict_split_unit.py; 12
    runs alone all exited 1).  A second abort still fails the test.  A script
    cited only by entries bounded to other torch releases (their ``torch:``
    field) is not run: its bug is not expected on this one.
    """
    citing = [
        (p, e) for p in SHIPPED for e in load_xfails(p) if (p.parent / e.reproducer).resolve() == script.resolve()
    ]
    if citing and not any(e.holds_for(torch.__version__) for _, e in citing):
        pytest.skip(f"its entries hold for other torch releases ({', '.join(e.torch for _, e in citing)})")
    missing = _missing_frameworks({p.stem for p, _ in citing})
    if citing and missing:
        # Its ImportError would exit 1 too: that is no reproduction.
        pytest.skip("; ".join(missing))
    for _attempt in range(2):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
        proc = run_script(script, env=env, timeout=120)
        if proc.returncode >= 0:
            break
    out = proc.stdout
    assert proc.returncode != 0, (
        f"{script.name} exited 0 on torch {torch.__version__}: the bug looks fixed; "
        f"bound its entries ('torch: <X') or remove them and the script\n{out[-2000:]}"
    )
    assert proc.returncode == 1, f"{script.name} crashed (exit {proc.returncode}) instead of reproducing:\n{out[-3000:]}"


def _floor_probes():
    from osdconform.scenario._releases import FLOORS, MODEL_FLOORS

    found = {}
    floors = [(floor, why, f"{kind} on {device}") for (kind, device), (floor, why) in FLOORS.items()]
    floors += [(floor.first, floor.why, floor.applies.__name__) for floor in MODEL_FLOORS]
    for floor, why, what in floors:
        match = re.search(r"probe: expected_failures/(floors/\w+\.py)", why)
        if match:
            found[match.group(1)] = (floor, what)
    return sorted(found.items())


@pytest.mark.parametrize("probe, floor", _floor_probes(), ids=lambda v: v if isinstance(v, str) else "")
def test_release_floors_agree_with_their_probes_on_the_installed_torch(probe, floor):
    """Each plan refused below a torch release has a probe that trains it: on the installed
    torch the probe must succeed exactly when the release is at or above the floor."""
    from packaging.version import Version

    from osdconform.scenario import installed_release

    release, (first, what) = installed_release(), floor
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    proc = run_script(SHIPPED_DIR / probe, env=env, timeout=300)
    expected = 0 if Version(release) >= Version(first) else 1
    assert proc.returncode == expected, (
        f"{probe} exited {proc.returncode} on torch {release}; the floor of {what} is {first}:\n"
        + proc.stdout[-4000:]
    )
