"""The conformance report: counts per property x backend x feature, as JSON and as Markdown.

A run of the suites (``--osd-report FILE``) writes a `RunReport` as JSON; the
``osdconform report`` command renders one or more of them as a Markdown
conformance matrix and, given a baseline (last night's JSON), the difference:
new failures, fixed, newly unsupported.  Kept free of pytest so that the
command can read a report anywhere (``osdconform.plugin._results`` fills it during a run).

Units: ``passed`` / ``failed`` / ``xfailed`` / ``xpassed`` count *examples*
(every example Hypothesis ran, shrinking attempts included, so a failure
counts many times; the cell's status is what a reader acts on), ``examples``
is their sum, ``time`` the seconds they took, and ``unsupported`` counts
*tests* skipped because the backend does not declare the combination.
The feature ``all`` of a property sums every example of it once.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

from ._checks import render_checks

FORMAT = "osdconform-report/1"
ALL_FEATURES = "all"
COUNTS = ("passed", "failed", "xfailed", "xpassed", "unsupported")
OUTCOMES = ("passed", "failed", "xfailed", "xpassed")


class ReportError(ValueError):
    """A file that is not a readable osdconform report; the message names it."""


@dataclass
class Cell:
    """Counts of one (property, backend, feature)."""

    property: str
    backend: str
    feature: str
    passed: int = 0
    failed: int = 0
    xfailed: int = 0
    xpassed: int = 0
    unsupported: int = 0
    time: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.property, self.backend, self.feature)

    @property
    def examples(self) -> int:
        return self.passed + self.failed + self.xfailed + self.xpassed

    def add(self, other: "Cell") -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.time += other.time

    @property
    def status(self) -> str:
        """``fail``, ``xpass``, ``xfail``, ``pass``, ``unsupported`` or ``not run``."""
        if self.failed:
            return "fail"
        if self.xpassed:
            return "xpass"
        if self.xfailed:
            return "xfail"
        if self.passed:
            return "pass"
        if self.unsupported:
            return "unsupported"
        return "not run"

    def label(self) -> str:
        """The cell as shown in the matrix, e.g. ``FAIL 3/40`` or ``pass 40``."""
        n = self.examples
        text = {
            "fail": f"FAIL {self.failed}/{n}",
            "xpass": f"XPASS {self.xpassed}/{n}",
            "xfail": f"xfail {self.xfailed}/{n}",
            "pass": f"pass {n}",
            "unsupported": "unsupported",
            "not run": "-",
        }[self.status]
        if self.unsupported and self.status != "unsupported":
            text += f", {self.unsupported} unsupported"
        return text

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["examples"] = self.examples
        data["time"] = round(self.time, 3)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Cell":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TestResult:
    """One pytest test: its property and how it ended (``unsupported`` for a capability skip)."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    property: str
    outcome: str  # passed | failed | error | skipped | unsupported | xfailed
    duration: float = 0.0
    examples: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = round(self.duration, 3)
        return data


@dataclass
class RunReport:
    """Everything one run reports; what ``--osd-report`` writes."""

    backend: str
    backend_spec: str
    torch: str
    device: str
    profile: str
    world_sizes: list[int]
    started: str = ""
    duration: float = 0.0
    hypothesis_seed: str | None = None
    exit_status: int | None = None
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    tests: list[TestResult] = field(default_factory=list)
    xfailed: dict[str, int] = field(default_factory=dict)
    xpassed: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    #: (property, check, "failed" | "xfailed") -> problems of failing examples (`_checks`).
    checks: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def cell(self, prop: str, feature: str, backend: str | None = None) -> Cell:
        key = (prop, backend or self.backend, feature)
        if key not in self.cells:
            self.cells[key] = Cell(*key)
        return self.cells[key]

    def count(self, prop: str, features: Iterable[str], outcome: str, n: int = 1, time: float = 0.0) -> None:
        """Add `n` of `outcome` to the property's ``all`` cell and to each of `features`."""
        for feature in (ALL_FEATURES, *sorted(set(features))):
            cell = self.cell(prop, feature)
            setattr(cell, outcome, getattr(cell, outcome) + n)
            cell.time += time

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "backend": self.backend,
            "backend_spec": self.backend_spec,
            "torch": self.torch,
            "device": self.device,
            "profile": self.profile,
            "world_sizes": list(self.world_sizes),
            "hypothesis_seed": self.hypothesis_seed,
            "started": self.started,
            "duration": round(self.duration, 3),
            "exit_status": self.exit_status,
            "cells": [c.to_json() for _, c in sorted(self.cells.items())],
            "tests": [t.to_json() for t in self.tests],
            "expected_failures": {
                "xfailed": dict(sorted(self.xfailed.items())),
                "xpassed": dict(sorted(self.xpassed.items())),
                "unmatched": sorted(self.unmatched),
            },
            "checks": [[p, c, o, n] for (p, c, o), n in sorted(self.checks.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunReport":
        report = cls(
            backend=data["backend"],
            backend_spec=data.get("backend_spec", data["backend"]),
            torch=data.get("torch", "?"),
            device=data.get("device", "?"),
            profile=data.get("profile", "?"),
            world_sizes=list(data.get("world_sizes", [])),
            started=data.get("started", ""),
            duration=float(data.get("duration", 0.0)),
            hypothesis_seed=data.get("hypothesis_seed"),
            exit_status=data.get("exit_status"),
        )
        for raw in data.get("cells", []):
            cell = Cell.from_json(raw)
            report.cells[cell.key] = cell
        report.tests = [
            TestResult(**{k: v for k, v in t.items() if k in {f.name for f in fields(TestResult)}})
            for t in data.get("tests", [])
        ]
        xf = data.get("expected_failures", {})
        report.xfailed = dict(xf.get("xfailed", {}))
        report.xpassed = dict(xf.get("xpassed", {}))
        report.unmatched = list(xf.get("unmatched", []))
        report.checks = {(p, c, o): int(n) for p, c, o, n in data.get("checks", [])}
        return report

    def write(self, path: str | os.PathLike) -> None:
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)


def load_report(path: str | os.PathLike) -> RunReport:
    """Read a report written by ``--osd-report``; `ReportError` names the file if it is not one."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise ReportError(f"cannot read report {os.fspath(path)}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{os.fspath(path)} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReportError(f"{os.fspath(path)} is not an osdconform report (no \"format\": \"{FORMAT}\")")
    try:
        return RunReport.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{os.fspath(path)}: malformed osdconform report: {exc!r}") from None


# --------------------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _feature_order(feature: str) -> tuple[int, str, str]:
    if feature == ALL_FEATURES:
        return (0, "", "")
    dimension, sep, value = feature.partition(":")
    # Tagged dimensions (plan:, optimizer:, world:, ...) before plain tags.
    return (1, dimension, value) if sep else (2, "", feature)


def _describe_run(r: RunReport) -> str:
    parts = [f"backend `{r.backend}`" + (f" (`{r.backend_spec}`)" if r.backend_spec != r.backend else "")]
    parts.append(f"torch {r.torch}")
    parts.append(f"device {r.device}")
    parts.append(f"profile `{r.profile}`")
    if r.world_sizes:
        parts.append("world sizes " + ", ".join(map(str, r.world_sizes)))
    if r.hypothesis_seed is not None:
        parts.append(f"seed {r.hypothesis_seed}")
    when = f"{r.started}, " if r.started else ""
    return ", ".join(parts) + f" ({when}{format_seconds(r.duration)})"


def _merge(reports: list[RunReport]) -> dict[tuple[str, str, str], Cell]:
    cells: dict[tuple[str, str, str], Cell] = {}
    for r in reports:
        for key, cell in r.cells.items():
            merged = cells.setdefault(key, Cell(*key))
            merged.add(cell)
    return cells


def render_matrix(reports: list[RunReport]) -> str:
    """The conformance matrix: a row per feature, a column per (property, backend)."""
    cells = _merge(reports)
    columns = sorted({(p, b) for p, b, _ in cells})
    several_backends = len({b for _, b in columns}) > 1
    features = sorted({f for _, _, f in cells}, key=_feature_order)
    heads = [f"{p} ({b})" if several_backends else p for p, b in columns]
    lines = ["| feature | " + " | ".join(_md(h) for h in heads) + " |"]
    lines.append("| --- |" + " --- |" * len(columns))
    for feature in features:
        row = []
        for p, b in columns:
            cell = cells.get((p, b, feature))
            row.append(cell.label() if cell else "-")
        name = f"**{feature}**" if feature == ALL_FEATURES else _md(feature)
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_totals(reports: list[RunReport]) -> str:
    lines = [
        "| property | backend | status | passed | failed | xfailed | xpassed | unsupported tests | examples | time |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (p, b, f), c in sorted(_merge(reports).items()):
        if f != ALL_FEATURES:
            continue
        lines.append(
            f"| {_md(p)} | {_md(b)} | {c.status} | {c.passed} | {c.failed} | {c.xfailed} | {c.xpassed} "
            f"| {c.unsupported} | {c.examples} | {format_seconds(c.time)} |"
        )
    return "\n".join(lines)


def render_expected_failures(reports: list[RunReport]) -> str:
    lines = []
    for r in reports:
        for entry, n in sorted(r.xpassed.items()):
            lines.append(f"- **XPASS** ({r.backend}): {n} example(s) passed though covered by {entry}")
        for entry, n in sorted(r.xfailed.items()):
            lines.append(f"- xfail ({r.backend}): {n} example(s) failed as expected: {entry}")
        for entry in sorted(r.unmatched):
            lines.append(f"- unmatched ({r.backend}): no example of the run matched {entry}")
    return "\n".join(lines) if lines else "none recorded in this run"


# --------------------------------------------------------------------------- difference

_RAN = {"pass", "fail", "xfail", "xpass"}


@dataclass
class Difference:
    """What changed from a baseline run: lines for each section, cells then tests."""

    new_failures: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    newly_unsupported: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool(self.new_failures)


def _outcome_class(outcome: str | None) -> str | None:
    return {"failed": "fail", "error": "fail", "passed": "pass", "xfailed": "xfail"}.get(outcome or "", outcome)


def difference(baseline: list[RunReport], current: list[RunReport]) -> Difference:
    diff = Difference()
    old_cells, new_cells = _merge(baseline), _merge(current)
    for key in sorted(set(old_cells) | set(new_cells), key=lambda k: (k[0], k[1], _feature_order(k[2]))):
        old, new = old_cells.get(key), new_cells.get(key)
        before = old.status if old else "not run"
        after = new.status if new else "not run"
        prop, backend, feature = key
        line = f"{prop} / {feature} ({backend}): {old.label() if old else '-'} -> {new.label() if new else '-'}"
        if after == "fail" and before != "fail":
            diff.new_failures.append(line)
        elif before in ("fail", "xfail") and after in ("pass", "xpass"):
            diff.fixed.append(line)
        elif after == "unsupported" and before in _RAN:
            diff.newly_unsupported.append(line)
    old_tests = {(t.nodeid, r.backend): t for r in baseline for t in r.tests}
    for r in current:
        for t in r.tests:
            old = old_tests.get((t.nodeid, r.backend))
            before = _outcome_class(old.outcome if old else None)
            after = _outcome_class(t.outcome)
            line = f"test `{t.nodeid}` ({r.backend}): {old.outcome if old else 'not run'} -> {t.outcome}"
            if after == "fail" and before != "fail":
                diff.new_failures.append(line)
            elif before in ("fail", "xfail") and after == "pass":
                diff.fixed.append(line)
            elif after == "unsupported" and before in _RAN:
                diff.newly_unsupported.append(line)
    return diff


def render_difference(baseline: list[RunReport], current: list[RunReport]) -> str:
    diff = difference(baseline, current)
    lines = ["Baseline: " + "; ".join(_describe_run(r) for r in baseline), ""]
    for title, items in (
        ("New failures", diff.new_failures),
        ("Fixed", diff.fixed),
        ("Newly unsupported", diff.newly_unsupported),
    ):
        lines.append(f"### {title} ({len(items)})")
        lines.append("")
        lines.extend([f"- {item}" for item in items] or ["none"])
        lines.append("")
    return "\n".join(lines).rstrip()


def render_markdown(reports: list[RunReport], baseline: list[RunReport] | None = None) -> str:
    """The whole Markdown document ``osdconform report`` prints."""
    parts = ["# osdconform conformance report", ""]
    parts += [f"- {_describe_run(r)}" for r in reports]
    parts += ["", "## Matrix", "", render_matrix(reports), ""]
    parts += ["## Totals", "", render_totals(reports), ""]
    parts += ["## Expected failures", "", render_expected_failures(reports), ""]
    parts += ["## Problems per check", "", render_checks(reports), ""]
    if baseline is not None:
        parts += ["## Changes since baseline", "", render_difference(baseline, reports), ""]
    return "\n".join(parts).rstrip("\n") + "\n"
