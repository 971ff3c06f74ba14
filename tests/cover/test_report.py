"""The conformance report: what a nightly job's reader sees, pinned verbatim.

The Markdown that ``osdconform report`` renders (matrix, totals, expected
failures, changes since a baseline) is pinned with ``assertExpectedInline``;
to update after a deliberate change run
``EXPECTTEST_ACCEPT=1 pytest tests/cover/test_report.py`` and review the diff.
The reports are built with `RunReport.count`, the call a run makes per
example, and go through a JSON file (write, load) as they would between the
run and the command.

Pure: no processes.
"""

from __future__ import annotations

import json

import expecttest
import pytest

from osdconform.reporting._report import (
    Cell,
    ReportError,
    RunReport,
    TestResult,
    difference,
    load_report,
    render_markdown,
)


def _run(**overrides) -> RunReport:
    fields = dict(
        backend="torch-dsd", backend_spec="torch-dsd", torch="2.13.0+cpu", device="cpu",
        profile="nightly", world_sizes=[1, 2], started="2026-11-23 02:00 UTC", duration=3725.0,
    )
    fields.update(overrides)
    return RunReport(**fields)


def last_night() -> RunReport:
    r = _run(torch="2.12.0+cpu", started="2026-11-22 02:00 UTC")
    r.count("roundtrip", ["plan:none", "form:full", "optimizer:adam", "world:1"], "passed", n=30, time=3.0)
    r.count("roundtrip", ["plan:fsdp2", "form:sharded", "optimizer:sgd", "world:2"], "passed", n=20, time=9.0)
    r.count("roundtrip", ["plan:fsdp2", "form:sharded", "optimizer:adam", "world:2"], "failed", n=4, time=2.0)
    r.count("fidelity", ["plan:ddp", "form:full", "optimizer:adam", "world:2"], "passed", n=10, time=1.5)
    r.tests = [
        TestResult("suites/test_roundtrip.py::test_roundtrip[full-none]", "roundtrip", "passed", 3.1, 30),
        TestResult("suites/test_roundtrip.py::test_roundtrip[sharded-fsdp2]", "roundtrip", "failed", 11.2, 24),
        TestResult("suites/test_roundtrip.py::test_fidelity[ddp]", "fidelity", "passed", 1.6, 10),
    ]
    return r


def tonight() -> RunReport:
    r = _run()
    r.count("roundtrip", ["plan:none", "form:full", "optimizer:adam", "world:1"], "xfailed", n=3, time=0.5)
    r.count("roundtrip", ["plan:none", "form:full", "optimizer:adam", "world:1"], "passed", n=27, time=2.5)
    r.count("roundtrip", ["plan:fsdp2", "form:sharded", "optimizer:sgd", "world:2"], "passed", n=22, time=9.9)
    r.count("roundtrip", ["plan:fsdp2", "form:sharded", "optimizer:adam", "world:2"], "passed", n=8, time=3.0)
    r.count("fidelity", ["plan:ddp"], "unsupported")
    r.tests = [
        TestResult("suites/test_roundtrip.py::test_roundtrip[full-none]", "roundtrip", "passed", 3.0, 30),
        TestResult("suites/test_roundtrip.py::test_roundtrip[sharded-fsdp2]", "roundtrip", "passed", 12.9, 30),
        TestResult("suites/test_roundtrip.py::test_fidelity[ddp]", "fidelity", "unsupported", 0.0, 0),
    ]
    r.xfailed = {"osdconform/expected_failures/torch-dsd.txt:3: roundtrip where o.full: betas become a list (repro/x.py)": 3}
    r.unmatched = ["my-xfails.txt:1: fidelity where o.flatten: old bug (n/a)"]
    return r


def through_json(report: RunReport, tmp_path, name: str) -> RunReport:
    path = tmp_path / name
    report.write(path)
    return load_report(path)


class TestRendering(expecttest.TestCase):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path):
        self.tmp_path = tmp_path

    def test_matrix_totals_and_expected_failures(self):
        report = through_json(tonight(), self.tmp_path, "tonight.json")
        self.assertExpectedInline(render_markdown([report]), """\
# osdconform conformance report

- backend `torch-dsd`, torch 2.13.0+cpu, device cpu, profile `nightly`, world sizes 1, 2 (2026-11-23 02:00 UTC, 1 h 2 min)

## Matrix

| feature | fidelity | roundtrip |
| --- | --- | --- |
| **all** | unsupported | xfail 3/60 |
| form:full | - | xfail 3/30 |
| form:sharded | - | pass 30 |
| optimizer:adam | - | xfail 3/38 |
| optimizer:sgd | - | pass 22 |
| plan:ddp | unsupported | - |
| plan:fsdp2 | - | pass 30 |
| plan:none | - | xfail 3/30 |
| world:1 | - | xfail 3/30 |
| world:2 | - | pass 30 |

## Totals

| property | backend | status | passed | failed | xfailed | xpassed | unsupported tests | examples | time |
| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| fidelity | torch-dsd | unsupported | 0 | 0 | 0 | 0 | 1 | 0 | 0.0 s |
| roundtrip | torch-dsd | xfail | 57 | 0 | 3 | 0 | 0 | 60 | 15.9 s |

## Expected failures

- xfail (torch-dsd): 3 example(s) failed as expected: osdconform/expected_failures/torch-dsd.txt:3: roundtrip where o.full: betas become a list (repro/x.py)
- unmatched (torch-dsd): no example of the run matched my-xfails.txt:1: fidelity where o.flatten: old bug (n/a)

## Problems per check

no example failed in this run
""")

    def test_changes_since_baseline(self):
        current = through_json(tonight(), self.tmp_path, "tonight.json")
        baseline = through_json(last_night(), self.tmp_path, "last.json")
        text = render_markdown([current], [baseline])
        self.assertExpectedInline(text[text.index("## Changes since baseline"):], """\
## Changes since baseline

Baseline: backend `torch-dsd`, torch 2.12.0+cpu, device cpu, profile `nightly`, world sizes 1, 2 (2026-11-22 02:00 UTC, 1 h 2 min)

### New failures (0)

none

### Fixed (4)

- roundtrip / form:sharded (torch-dsd): FAIL 4/24 -> pass 30
- roundtrip / plan:fsdp2 (torch-dsd): FAIL 4/24 -> pass 30
- roundtrip / world:2 (torch-dsd): FAIL 4/24 -> pass 30
- test `suites/test_roundtrip.py::test_roundtrip[sharded-fsdp2]` (torch-dsd): failed -> passed

### Newly unsupported (3)

- fidelity / all (torch-dsd): pass 10 -> unsupported
- fidelity / plan:ddp (torch-dsd): pass 10 -> unsupported
- test `suites/test_roundtrip.py::test_fidelity[ddp]` (torch-dsd): passed -> unsupported
""")

    def test_several_backends_get_a_column_each(self):
        dsd = tonight()
        ref = _run(backend="reference", backend_spec="reference", profile="ci", duration=42.0)
        ref.count("roundtrip", ["plan:none", "form:full"], "passed", n=25, time=1.0)
        text = render_markdown([dsd, ref])
        self.assertExpectedInline(text[text.index("## Matrix"):text.index("## Totals")], """\
## Matrix

| feature | fidelity (torch-dsd) | roundtrip (reference) | roundtrip (torch-dsd) |
| --- | --- | --- | --- |
| **all** | unsupported | pass 25 | xfail 3/60 |
| form:full | - | pass 25 | xfail 3/30 |
| form:sharded | - | - | pass 30 |
| optimizer:adam | - | - | xfail 3/38 |
| optimizer:sgd | - | - | pass 22 |
| plan:ddp | unsupported | - | - |
| plan:fsdp2 | - | - | pass 30 |
| plan:none | - | pass 25 | xfail 3/30 |
| world:1 | - | - | xfail 3/30 |
| world:2 | - | - | pass 30 |

""")


def test_counts_go_to_all_and_to_each_feature_once():
    r = _run()
    r.count("roundtrip", ["plan:none", "plan:none", "world:1"], "failed", n=2, time=1.0)
    r.count("roundtrip", ["plan:none"], "passed", n=5, time=2.0)
    r.count("roundtrip", ["plan:ddp"], "unsupported")
    all_ = r.cells[("roundtrip", "torch-dsd", "all")]
    assert (all_.passed, all_.failed, all_.unsupported, all_.examples, all_.time) == (5, 2, 1, 7, 3.0)
    none = r.cells[("roundtrip", "torch-dsd", "plan:none")]
    assert (none.passed, none.failed, none.examples, none.status, none.label()) == (5, 2, 7, "fail", "FAIL 2/7")
    ddp = r.cells[("roundtrip", "torch-dsd", "plan:ddp")]
    assert (ddp.examples, ddp.status, ddp.label()) == (0, "unsupported", "unsupported")


@pytest.mark.parametrize(
    "counts, status, label",
    [
        (dict(passed=3, failed=1, xfailed=1, xpassed=1), "fail", "FAIL 1/6"),
        (dict(passed=3, xfailed=1, xpassed=1), "xpass", "XPASS 1/5"),
        (dict(passed=3, xfailed=2), "xfail", "xfail 2/5"),
        (dict(passed=3, unsupported=2), "pass", "pass 3, 2 unsupported"),
        (dict(unsupported=1), "unsupported", "unsupported"),
        (dict(), "not run", "-"),
    ],
)
def test_cell_status_is_the_worst_outcome(counts, status, label):
    cell = Cell("roundtrip", "b", "all", **counts)
    assert (cell.status, cell.label()) == (status, label)


def test_json_round_trip_keeps_everything(tmp_path):
    original = tonight()
    loaded = through_json(original, tmp_path, "r.json")
    assert loaded.to_json() == original.to_json()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["format"] == "osdconform-report/1"
    cell = next(c for c in data["cells"] if c["property"] == "roundtrip" and c["feature"] == "all")
    assert cell == {
        "property": "roundtrip", "backend": "torch-dsd", "feature": "all", "passed": 57, "failed": 0,
        "xfailed": 3, "xpassed": 0, "unsupported": 0, "time": 15.9, "examples": 60,
    }


def test_difference_sections():
    diff = difference([last_night()], [tonight()])
    assert not diff.regressed
    assert any("roundtrip / plan:fsdp2" in line for line in diff.fixed)
    # FAIL -> xfail (the failure got an expected-failure entry) is neither fixed nor new.
    assert not any("optimizer:adam" in line for line in diff.fixed + diff.new_failures)
    assert any("test_fidelity[ddp]" in line for line in diff.newly_unsupported)
    assert difference([tonight()], [last_night()]).regressed


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "is not JSON: Expecting value at line 1"),
        ('{"backend": "x"}', 'is not an osdconform report (no "format": "osdconform-report/1")'),
        ('{"format": "osdconform-report/1"}', "malformed osdconform report: KeyError('backend')"),
    ],
)
def test_unreadable_reports_are_named(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ReportError) as info:
        load_report(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_missing_report_file(tmp_path):
    with pytest.raises(ReportError, match=r"cannot read report .*nope\.json: No such file or directory"):
        load_report(tmp_path / "nope.json")
