"""Collecting results during a pytest run, across xdist workers, into a `RunReport`.

Examples run where the test runs: in the pytest process, or in an xdist worker.
Each test's numbers (`ItemRecord`: examples per property and feature and how
they ended, expected-failure entries that applied, failed as expected or
passed, and whether the test was skipped as unsupported) are attached to the
test's teardown report as one ``user_properties`` entry, which xdist carries
to the controller.  There (or in the only process, without xdist)
`ResultCollector` adds them into one `RunReport`, prints the end-of-run
summary, and writes ``--osd-report``.  It removes the bulky entry from the
report before pytest's JUnit XML sees it; the per-entry ``osd_xfailed`` /
``osd_xpassed`` properties stay in the XML.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable

import pytest

from ..reporting._checks import problems_per_check
from ..reporting._report import RunReport, TestResult

ITEM_PROPERTY = "osd_item"
XFAILED_PROPERTY = "osd_xfailed"
XPASSED_PROPERTY = "osd_xpassed"
UNSUPPORTED_PREFIX = "unsupported by backend"


def example_features(scenario: Any, options: Any) -> frozenset[str]:
    """An example's feature tags: its scenario's and its options' (`StateOptions.features`)."""
    return frozenset(scenario.features) | options.features()


class ItemRecord:
    """What one test did, in plain values that xdist can carry."""

    def __init__(self) -> None:
        # (property, feature tuple, outcome) -> [examples, seconds]
        self.examples: dict[tuple[str, tuple[str, ...], str], list[float]] = {}
        self.properties: list[str] = []
        self.matched: Counter = Counter()  # entry -> examples it applied to
        self.xfailed: Counter = Counter()
        self.xpassed: Counter = Counter()
        self.unsupported: tuple[list[str], str] | None = None
        # (property, check, "failed" | "xfailed") -> problems (`expected_failures.check_of`)
        self.checks: Counter = Counter()

    def example(self, prop: str, features: Iterable[str], outcome: str, seconds: float, entries: Iterable[str]) -> None:
        if prop not in self.properties:
            self.properties.append(prop)
        slot = self.examples.setdefault((prop, tuple(sorted(features)), outcome), [0, 0.0])
        slot[0] += 1
        slot[1] += seconds
        for entry in entries:
            self.matched[entry] += 1

    def skipped_unsupported(self, features: Iterable[str], reason: str) -> None:
        self.unsupported = (sorted(features), reason)

    @property
    def n_examples(self) -> int:
        return int(sum(n for n, _ in self.examples.values()))

    def payload(self) -> dict[str, Any]:
        return {
            "examples": [[p, list(f), o, n, round(t, 6)] for (p, f, o), (n, t) in self.examples.items()],
            "properties": list(self.properties),
            "matched": dict(self.matched),
            "xfailed": dict(self.xfailed),
            "xpassed": dict(self.xpassed),
            "unsupported": list(self.unsupported) if self.unsupported else None,
            "checks": [[p, c, o, n] for (p, c, o), n in self.checks.items()],
        }

    def attach(self, item: Any) -> None:
        """Add this record to the item's ``user_properties`` (it then rides the teardown report)."""
        item.user_properties.append((ITEM_PROPERTY, self.payload()))
        for entry, n in sorted(self.xfailed.items()):
            item.user_properties.append((XFAILED_PROPERTY, (entry, n)))
        for entry, n in sorted(self.xpassed.items()):
            item.user_properties.append((XPASSED_PROPERTY, (entry, n)))


def property_of_test(nodeid: str) -> str:
    """A test's property when it never ran an example: its function name without ``test_``."""
    name = nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
    return name[5:] if name.startswith("test_") else name


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    return str(longrepr or "")


class ResultCollector:
    """The controller-side plugin: one `RunReport` for the whole run, summary, JSON."""

    def __init__(self, config: pytest.Config, conformance: Any, report_path: str | None) -> None:
        import torch

        self.config = config
        self.conformance = conformance
        self.report_path = report_path
        self.started = time.time()
        self.report = RunReport(
            backend=conformance.name,
            backend_spec=conformance.backend_spec,
            torch=torch.__version__,
            device=conformance.device,
            profile="?",
            world_sizes=list(conformance.world_sizes),
            started=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        )
        self.ran_examples = 0
        self.matched: dict[str, int] = {}  # expected-failure entry -> examples it applied to
        self._phases: dict[str, dict[str, pytest.TestReport]] = {}

    # -- hooks -------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        phases = self._phases.setdefault(report.nodeid, {})
        phases[report.when] = report
        if report.when != "teardown":
            return
        payload = None
        kept = []
        for name, value in report.user_properties:
            if name == ITEM_PROPERTY:
                payload = value
            else:
                kept.append((name, value))
        report.user_properties[:] = kept
        phases = self._phases.pop(report.nodeid)
        if payload is not None:  # a conformance test (it used the `osd` fixture)
            self._add_test(report.nodeid, phases, payload)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from ._profiles import current_profile_name

        r = self.report
        r.profile = current_profile_name()
        seed = self.config.getoption("hypothesis_seed", None)
        r.hypothesis_seed = None if seed is None else str(seed)
        r.duration = time.time() - self.started
        r.exit_status = int(exitstatus)
        # A run cut short (-x, Ctrl-C) did not get to run what an entry matches.
        complete = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not session.shouldstop
        r.unmatched = self.unmatched_entries() if complete else []
        if self.report_path:
            r.write(self.report_path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        r = self.report
        if not (r.xfailed or r.xpassed or r.unmatched or r.checks or self.report_path):
            return
        tr = terminalreporter
        tr.section("osdconform")
        for entry, n in sorted(r.xpassed.items()):
            tr.write_line(
                f"XPASS {n:5d} example(s) passed though an expected failure covers them "
                f"(fixed? remove or narrow the entry): {entry}",
                red=True, bold=True,
            )
        for entry, n in sorted(r.xfailed.items()):
            tr.write_line(f"{n:5d} example(s) failed as expected: {entry}")
        for (prop, check), counts in sorted(problems_per_check(r).items()):
            tr.write_line(
                f"problems of {prop} / {check}: {counts['failed']} failed, {counts['xfailed']} expected"
            )
        for entry in r.unmatched:
            tr.write_line(
                f"WARNING: expected-failure entry matched no example of this run "
                f"(stale predicate, or its property was not run): {entry}",
                yellow=True,
            )
        if self.report_path:
            tr.write_line(f"osdconform report written to {self.report_path}")

    # -- aggregation -------------------------------------------------------

    def _add_test(self, nodeid: str, phases: dict[str, pytest.TestReport], payload: dict) -> None:
        r = self.report
        for prop, features, outcome, n, seconds in payload.get("examples", []):
            r.count(prop, features, outcome, n=int(n), time=float(seconds))
            self.ran_examples += int(n)
        for kind, into in (("xfailed", r.xfailed), ("xpassed", r.xpassed), ("matched", self.matched)):
            for entry, n in payload.get(kind, {}).items():
                into[entry] = into.get(entry, 0) + int(n)
        for prop, check, outcome, n in payload.get("checks", []):
            r.checks[(prop, check, outcome)] = r.checks.get((prop, check, outcome), 0) + int(n)
        properties = payload.get("properties") or [property_of_test(nodeid)]
        outcome = self._outcome(phases, payload)
        if outcome == "unsupported":
            features = payload["unsupported"][0] if payload.get("unsupported") else []
            for prop in properties:
                r.count(prop, features, "unsupported")
        duration = sum(getattr(rep, "duration", 0.0) for rep in phases.values())
        examples = sum(int(row[3]) for row in payload.get("examples", []))
        r.tests.append(TestResult(nodeid, properties[0], outcome, duration, examples))

    @staticmethod
    def _outcome(phases: dict[str, pytest.TestReport], payload: dict) -> str:
        setup, call, teardown = (phases.get(w) for w in ("setup", "call", "teardown"))
        for rep in (setup, call):
            if rep is not None and rep.skipped:
                if getattr(rep, "wasxfail", None) is not None:
                    return "xfailed"
                if payload.get("unsupported") or _skip_reason(rep).startswith(UNSUPPORTED_PREFIX):
                    return "unsupported"
                return "skipped"
        if setup is not None and setup.failed:
            return "error"
        if call is not None and call.failed:
            return "failed"
        if teardown is not None and teardown.failed:
            return "error"
        return "passed"

    def unmatched_entries(self) -> list[str]:
        """Expected-failure entries of the space that ran that no example applied to
        (only if some example ran at all).

        A ``space: full`` entry cannot match in a core run (the space the
        run drew: ``--osd-space``, or the backend's default), so a core run
        does not warn about it; a full run warns about every entry, the full
        space holding the core one.
        """
        if not self.ran_examples:
            return []
        space = self.conformance.space.name
        return [
            e.describe() for e in self.conformance.xfails
            if e.describe() not in self.matched and (space == "full" or e.space == "core")
        ]
