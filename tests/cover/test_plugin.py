"""The pytest plugin: bad option values stop the run at start-up; profiles load right;
entry-point backends; the nightly database replays failures; the progress line.

Each case runs pytest in a subprocess (pytester's run, forked from a process
that has imported torch alone: `helpers/scripts.py`) on a tiny test file, so
option parsing and profile loading happen exactly as for a user.  None of
them spawns a world.
"""

from __future__ import annotations

import io
import re

import pytest

from helpers.installed_backend import install_entry_point_backend
from helpers.scripts import runpytest_subprocess
from osdconform.backends._registry import ADAPTERS, BUILTIN
from osdconform.plugin import CONFORMANCE_PLUGIN

USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


@pytest.fixture
def run(pytester, monkeypatch):
    pytester.makepyfile(test_probe="def test_probe():\n    pass\n")

    def _run(*args, env=None):
        for k in ("CI", "TF_BUILD", "GITHUB_ACTIONS"):
            monkeypatch.delenv(k, raising=False)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        # A project that uses the ``osd`` fixture in its own tests asks for
        # the conformance plugin (the entry point alone is inert).
        return runpytest_subprocess(pytester, "-p", "no:cacheprovider", "-p", CONFORMANCE_PLUGIN, *args)

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
        ("--osd-progress=loud", "--osd-progress: expected one of auto, live, log, off, got 'loud'"),
        ("--osd-device=tpu", "--osd-device: expected one of cpu, cuda, got 'tpu'"),
        ("--osd-checkpoint-dir=/no/such/dir", "--osd-checkpoint-dir: '/no/such/dir' is not a directory"),
    ],
)
def test_bad_option_stops_the_run_with_one_line(run, option, message):
    result = run(option)
    assert result.ret == USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines


def test_malformed_xfails_file_names_file_and_line(run, pytester):
    bad = pytester.makefile(
        ".txt", xfails="# comment\nproperty: roundtrip\nwhen: s.world_size ==\nmatch: x\nreason: y\nreproducer: z\n"
    )
    result = run(f"--osd-xfails={bad}")
    assert result.ret == USAGE_ERROR
    assert any(f"{bad}:3: predicate" in line for line in result.errlines), result.errlines


def test_xfails_file_with_missing_fields(run, pytester):
    bad = pytester.makefile(".txt", xfails="# c\nproperty: roundtrip\nwhen: True\nmatch: only three\n")
    result = run(f"--osd-xfails={bad}")
    assert result.ret == USAGE_ERROR
    assert any(f"{bad}:2: entry lacks field(s) reason, reproducer" in l for l in result.errlines), result.errlines


_ENTRY = "property: roundtrip\nwhen: True\nmatch: x\nreason: y\nreproducer: z\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("roundtrip | True | x | y | z\n", "f.txt:1: expected a field 'name: value'"),
        ("roundtrip | True | x | y | z\n", "are the old format"),
        (_ENTRY + "colour: red\n", "f.txt:6: expected a field 'name: value' with name one of"),
        (_ENTRY + "match: again\n", "f.txt:6: field 'match' given twice in one entry"),
        ("  continued\n" + _ENTRY, "f.txt:1: an indented line continues a field, but no field precedes it"),
        (_ENTRY + "space: nightly\n", "f.txt:6: space must be one of core, full, got 'nightly'"),
        (_ENTRY.replace("match: x", "match:"), "f.txt:3: field 'match' is empty"),
        ("# c\n\n" + _ENTRY.replace("reason: y\n", ""), "f.txt:3: entry lacks field(s) reason"),
        (_ENTRY + "\n" + _ENTRY.replace("True", "1 +"), "f.txt:8: predicate '1 +' is not a Python expression"),
        (_ENTRY + "torch: newest\n", "f.txt:6: torch must be a version specifier set such as '<2.14'"),
        (_ENTRY + "device: gpu\n", "f.txt:6: device must be one of cpu, cuda, got 'gpu'"),
    ],
)
def test_malformed_xfails_entries_are_refused_naming_file_and_line(text, message):
    from osdconform.expected_failures import XfailFileError, parse_xfails

    with pytest.raises(XfailFileError, match=re.escape(message)):
        parse_xfails(text, "f.txt")


def test_xfails_entries_start_where_their_first_field_is_and_values_continue():
    from osdconform.expected_failures import parse_xfails

    text = "# c\n\n" + _ENTRY.replace("reason: y", "reason: a long\n  reason\n\tgoes on") + "space: full\n\n\n" + _ENTRY
    first, second = parse_xfails(text, "f.txt")
    assert (first.where, first.reason, first.space) == ("f.txt:3", "a long reason goes on", "full")
    assert (second.where, second.space, second.properties) == ("f.txt:13", "core", ("roundtrip",))


@pytest.mark.parametrize(
    "bound, on_2_13, hint_on_2_15",
    [
        ("", True, True),
        ("<2.14", True, False),
        (">=2.14", False, True),
        (">=2.6,<2.10", False, False),
    ],
)
def test_an_entry_holds_for_the_torch_releases_its_bound_names(bound, on_2_13, hint_on_2_15):
    from osdconform.expected_failures import parse_xfails

    (e,) = parse_xfails(_ENTRY + (f"torch: {bound}\n" if bound else ""), "f.txt")
    assert e.torch == bound
    assert e.holds_for("2.13.0+cpu") is on_2_13 and e.holds_for("2.13.0a0+git123") is on_2_13
    hint = e.fixed_hint("2.15.0+cu128")
    assert bool(hint) is hint_on_2_15
    if hint:
        assert hint.startswith("fixed in torch 2.15.0? If so, bound the entry: 'torch: <2.15.0'")


@pytest.mark.parametrize("device, on_cpu, on_cuda", [("", True, True), ("cuda", False, True), ("cpu", True, False)])
def test_an_entry_holds_on_the_device_it_names(device, on_cpu, on_cuda):
    from osdconform.expected_failures import parse_xfails

    (e,) = parse_xfails(_ENTRY + (f"device: {device}\n" if device else ""), "f.txt")
    assert (e.device, e.holds_on("cpu"), e.holds_on("cuda")) == (device, on_cpu, on_cuda)
    assert (" on cuda:" in e.describe()) is (device == "cuda")


def test_a_failure_of_several_problems_is_explained_only_if_each_problem_is():
    from osdconform.expected_failures import PROBLEM_SEPARATOR, explaining, parse_xfails

    name, state = parse_xfails(
        _ENTRY.replace("match: x", "match: does not name") + "\n"
        + _ENTRY.replace("match: x", "match: optimizer before vs after"), "f.txt",
    )
    both = f"rank 0: errors (corrupt_file): the exception does not name the file{PROBLEM_SEPARATOR}" \
           "errors (corrupt_file): optimizer before vs after the failed load: OSD mismatch"
    assert explaining([name, state], both) == [name, state]
    assert explaining([name], both) == []  # the second problem is unexplained: a real failure
    assert explaining([state], both) == []
    assert explaining([name], "errors (corrupt_file): the exception does not name the file") == [name]


def test_entries_bounded_to_other_torch_releases_are_not_loaded(run, pytester):
    text = _ENTRY + "\n" + _ENTRY + "torch: <1.0\n" + "\n" + _ENTRY + "torch: >=1.0\n" + "\n" + _ENTRY + "device: cuda\n"
    xfails = pytester.makefile(".txt", xfails=text)
    result = run(f"--osd-xfails={xfails}")
    assert result.ret == 0
    assert any("2 expected-failure entries" in line for line in result.outlines), result.outlines


def test_cuda_device_without_gpu_is_a_usage_error(run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run("--osd-device=cuda")
    assert result.ret == USAGE_ERROR
    # One clear line, before any world is spawned (as for every bad option).
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == ["ERROR: --osd-device=cuda: torch sees no CUDA device on this machine"], result.errlines


PROFILE_PROBE = """
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

def test_profile():
    s = settings.default
    print("PROFILE", s.max_examples, s.derandomize, type(s.database).__name__)
    assert s.deadline is None
    assert "explain" not in [p.name for p in s.phases], s.phases  # osdconform's plumbing, see _profiles.PHASES
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
        (("--hypothesis-profile=ci-full",), {}, ["100", "True", "NoneType"]),
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


SEED_PROBE = """
import pytest
from hypothesis import strategies as st

@pytest.mark.parametrize("form", ["a", "b"])
def test_forms(osd, form):
    drawn = []

    @osd.given(st.integers(0, 10**9))
    def check(x):
        drawn.append(x)

    check()
    print("DRAWN", form, drawn)
"""


def _drawn(result):
    found = [l.split("DRAWN ", 1)[1] for l in result.outlines if "DRAWN " in l]
    return {d.split(None, 1)[0]: d.split(None, 1)[1] for d in found}


def test_derandomized_forms_of_one_test_draw_their_own_examples(run, pytester):
    """``osd.given`` seeds each test from its node id under a derandomized profile:
    the forms of a parametrized test share one inner function, which alone
    would give them one sequence; each run draws the same ones again."""
    pytester.makepyfile(test_probe=SEED_PROBE)
    first = _drawn(run("-s", "--hypothesis-profile=ci"))
    assert set(first) == {"a", "b"}, first
    assert first["a"] != first["b"]
    assert _drawn(run("-s", "--hypothesis-profile=ci")) == first


def test_nightly_database_path_can_be_set(run, pytester, tmp_path):
    pytester.makepyfile(
        test_probe="from hypothesis import settings\n"
        "def test_db():\n    print('DB', settings.default.database.path)\n"
    )
    result = run("-s", "--hypothesis-profile=nightly", env={"OSDCONFORM_HYPOTHESIS_DB": str(tmp_path / "db")})
    assert result.ret == 0
    assert any(f"DB {tmp_path / 'db'}" in l for l in result.outlines), result.outlines


# --------------------------------------------------------------------------- entry-point backends


def test_entry_point_backend_by_name_and_its_world_size_limit(run, pytester):
    install_entry_point_backend(pytester.path)
    ok = run("--osd-backend=fake-backend", "--osd-world-sizes=1,2")
    assert ok.ret == 0, ok.outlines + ok.errlines
    assert any("osdconform: backend fake-backend (fake-backend), core space, world sizes [1, 2]" in l for l in ok.outlines)
    too_big = run("--osd-backend=fake-backend", "--osd-world-sizes=1,4")
    assert too_big.ret == USAGE_ERROR
    errors = [line for line in too_big.errlines if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: --osd-world-sizes: backend 'fake-backend' cannot run world size 4: world size 4 > 2"
    ], too_big.errlines
    # Without --osd-world-sizes the default sizes are cut to what the backend runs, silently.
    assert run("--osd-backend=fake-backend").ret == 0


def test_unknown_backend_lists_entry_point_names(run, pytester):
    install_entry_point_backend(pytester.path)
    result = run("--osd-backend=nope")
    assert result.ret == USAGE_ERROR
    assert any(
        f"unknown backend 'nope': use a known name ({', '.join(sorted(BUILTIN))}, "
        f"{', '.join(sorted({*ADAPTERS, 'fake-backend'}))})" in l
        for l in result.errlines
    ), result.errlines


# --------------------------------------------------------------------------- nightly database

NIGHTLY_PROBE = """
import os
from hypothesis import given, strategies as st

@given(st.integers(0, 10**6))
def test_below_1000(x):
    with open(os.environ["SEEN"], "a") as f:
        f.write(f"{x}\\n")
    assert x < 1000
"""


def test_nightly_replays_last_nights_failure_first(run, pytester, tmp_path):
    pytester.makepyfile(test_probe=NIGHTLY_PROBE)
    db = tmp_path / "nightly-db"
    env = {"OSDCONFORM_HYPOTHESIS_DB": str(db)}
    first = run("--hypothesis-profile=nightly", env={**env, "SEEN": str(tmp_path / "night1.txt")})
    assert first.ret == 1 and any("x=1000" in l for l in first.outlines), first.outlines
    assert db.is_dir() and any(p.is_file() for p in db.rglob("*")), "nothing saved in the database"
    second = run("--hypothesis-profile=nightly", env={**env, "SEEN": str(tmp_path / "night2.txt")})
    assert second.ret == 1
    seen = (tmp_path / "night2.txt").read_text().split()
    assert seen[0] == "1000", seen[:5]  # the saved failure is the first example of the next night


# --------------------------------------------------------------------------- progress line

PROGRESS_PROBE = """
import time

def test_examples(osd):
    if osd.progress is None:  # no progress line in this process
        return
    for outcome in ["passed"] * 5 + ["failed"]:
        osd.progress.example(outcome)
    osd.progress.flush()
    time.sleep(1.5)  # let the controller (xdist) poll the counts
"""


@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_live_progress_line(run, pytester, xdist):
    pytester.makepyfile(test_probe=PROGRESS_PROBE)
    result = run("--osd-progress=live", *xdist)
    assert result.ret == 0, result.outlines + result.errlines
    out = "\n".join(result.outlines)
    # Drawn while the test ran, then erased with backspaces before pytest wrote its result.
    # (Cut to the terminal's width: a fast first example makes a long rate, "116.9/s".)
    assert re.search(r"osdconform: [1-6] examples, [0-9.]+/s, failures: 0 tests, [01] ex", out), out
    assert "\b" in out


@pytest.mark.parametrize("args", [(), ("-q",)], ids=["log-shorter-than-30s", "quiet"])
def test_no_progress_line_in_short_logs_or_under_q(run, pytester, args):
    pytester.makepyfile(test_probe=PROGRESS_PROBE)
    result = run(*args)
    assert result.ret == 0, result.outlines + result.errlines
    assert not any("osdconform: " in l and " examples, " in l for l in result.outlines), result.outlines


def test_log_mode_writes_at_most_one_line_per_30s(pytestconfig):
    from _pytest.terminal import TerminalReporter

    from osdconform.plugin._progress import Counts, ProgressLine

    now = [1000.0]
    out = io.StringIO()
    line = ProgressLine(TerminalReporter(pytestconfig, out), "log", clock=lambda: now[0])
    counts = Counts()
    for second in range(95):
        now[0] = 1000.0 + second
        counts.add("failed" if second == 50 else "passed")
        line.update(counts, failed_tests=1 if second > 50 else 0)
    lines = [l for l in out.getvalue().splitlines() if l]
    assert lines == [
        "osdconform: 31 examples, 1.0/s, failures: 0 tests, 0 examples",
        "osdconform: 61 examples, 1.0/s, failures: 1 tests, 1 examples",
        "osdconform: 91 examples, 1.0/s, failures: 1 tests, 1 examples",
    ]


def test_worker_counts_reach_the_controller_through_files(tmp_path):
    from osdconform.plugin._progress import WorkerCounts, read_worker_counts

    a, b = WorkerCounts(str(tmp_path), "gw0"), WorkerCounts(str(tmp_path), "gw1")
    for outcome in ("passed", "failed", "xfailed"):
        a.example(outcome)
    b.example("passed")
    a.flush()
    b.flush()
    total = read_worker_counts(str(tmp_path))
    assert (total.examples, total.failed, total.xfailed) == (4, 1, 1)


@pytest.mark.parametrize("space, warned", [("core", ["f.txt:1"]), ("full", ["f.txt:1", "f.txt:7"])])
def test_stale_warnings_only_for_entries_of_the_space_that_ran(space, warned):
    """A ``space: full`` entry cannot match in a core run: only a full run warns that it matched nothing."""
    from types import SimpleNamespace

    from osdconform.expected_failures import parse_xfails
    from osdconform.plugin._results import ResultCollector

    entries = parse_xfails(_ENTRY + "\n" + _ENTRY.replace("True", "False") + "space: full\n", "f.txt")
    collector = object.__new__(ResultCollector)
    collector.conformance = SimpleNamespace(xfails=entries, space=SimpleNamespace(name=space))
    collector.ran_examples, collector.matched = 1, {}
    assert [u.split(": ")[0] for u in collector.unmatched_entries()] == warned


def test_a_nested_session_keeps_this_sessions_sigterm_handler(pytester):
    """SIGTERM ends a run as Ctrl-C does (`plugin._cancel`); a pytest session nested in
    this one (as `helpers.suite_runner` runs the suites) finds the handler installed,
    so it must not take it away when it ends."""
    import signal

    from osdconform.plugin import _cancel

    assert signal.getsignal(signal.SIGTERM) is _cancel._terminate  # this session installed it
    pytester.makepyfile(test_probe="def test_probe():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", CONFORMANCE_PLUGIN)
    result.assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is _cancel._terminate
