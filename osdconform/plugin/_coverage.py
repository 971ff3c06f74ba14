"""``--osd-coverage``: which parts of the configuration space a run really exercised.

A property-based suite is only as good as what it draws.  After a run with
``--osd-coverage``, this prints how many examples exercised each optimizer,
plan, world size, dtype and feature (tied, frozen, unused branch, ...): the
scenario's `Scenario.features` tags, counted once per example that reached a
world (`Conformance.check` calls `record`).  Model features that no example
drew are listed too, so a dimension that is never reached shows up at once.

Every tag is also a Hypothesis ``event()`` (``--hypothesis-show-statistics``
shows them per test), and ``target()`` steers the search toward larger models
and toward parameters that leave some rank an empty shard, where real
checkpointing bugs live.

With ``-n``, each worker sends its counts with the test's teardown report
(``report.user_properties``, as the expected-failure totals do) and the
controller adds them up.  Registered by ``osdconform.plugin.conformance``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ._config import CONFORMANCE_KEY, value

_PROPERTY = "osd_coverage"
_EXAMPLES = "examples"
_COUNTS = pytest.StashKey[Counter]()

#: Counts from every test report (so from every xdist worker, on the controller).
_totals: Counter = Counter()


def pytest_configure(config: pytest.Config) -> None:
    _totals.clear()


def record(item: Any, scenario: Any) -> None:
    """Count `scenario`'s feature tags for `item`; report them to Hypothesis as events and targets."""
    tags = sorted(scenario.features)
    _hypothesis_observe(scenario, tags)
    if item is None:
        return
    counts = item.stash.setdefault(_COUNTS, Counter())
    counts[_EXAMPLES] += 1
    counts.update(tags)


def _hypothesis_observe(scenario: Any, tags: list[str]) -> None:
    from hypothesis import event, target
    from hypothesis.control import currently_in_test_context
    from hypothesis.errors import InvalidArgument

    if not currently_in_test_context():
        return
    for tag in tags:
        event(tag)
    for label, score in _targets(scenario).items():
        try:
            target(score, label=label)
        except InvalidArgument:  # this example already reported it (checked twice)
            pass


def _targets(scenario: Any) -> dict[str, float]:
    """Distances that help the search: model size, and parameters some rank holds none of."""
    shapes = scenario.model.param_shapes()
    world = scenario.world_size
    return {
        "model parameters": float(len(shapes)),
        "params with an empty local shard": float(
            sum(1 for s in shapes.values() if world > 1 and s and s[0] < world)
        ),
    }


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # Runs before the teardown report is made, so the counts travel with it.
    counts = item.stash.get(_COUNTS, None)
    if counts and value(item.config, "osd_coverage"):
        item.user_properties.append((_PROPERTY, dict(counts)))
    item.stash[_COUNTS] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    for name, counts in report.user_properties:
        if name == _PROPERTY:
            _totals.update(counts)


def group_counts(totals: Counter) -> dict[str, dict[str, int]]:
    """Tags grouped by their prefix (``plan:fsdp2`` -> ``plan``; plain tags under ``feature``)."""
    groups: dict[str, dict[str, int]] = {}
    for tag, n in totals.items():
        if tag == _EXAMPLES:
            continue
        group, sep, value = tag.partition(":")
        if not sep:
            group, value = "feature", tag
        groups.setdefault(group, {})[value] = n
    return groups


def format_report(totals: Counter, expected: list[str] = ()) -> list[str]:
    """The report's lines; `expected` (`Space.values`) are tags to name if no example drew them."""
    from ..scenario._models import MODEL_TAGS

    lines = [f"{totals[_EXAMPLES]} example(s) reached a world"]
    order = ["optimizer", "plan", "world", "dtype", "module", "container", "feature"]
    groups = group_counts(totals)
    for name in sorted(groups, key=lambda g: (order.index(g) if g in order else len(order), g)):
        values = groups[name]
        body = ", ".join(f"{v} {n}" for v, n in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"{name}: {body}")
    missing = [t for t in expected if totals[t] == 0]
    if missing:
        lines.append(f"values of the space no example drew: {', '.join(missing)}")
    missing = sorted(t for t in MODEL_TAGS if totals[t] == 0)
    if missing:
        lines.append(f"model features no example drew: {', '.join(missing)}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not value(config, "osd_coverage"):
        return
    terminalreporter.section("osdconform coverage")
    if not _totals[_EXAMPLES]:
        terminalreporter.write_line("no example reached a world")
        return
    osd = config.stash.get(CONFORMANCE_KEY, None)
    expected = osd.space.values(osd.capabilities, osd.world_sizes) if osd is not None else []
    for line in format_report(_totals, expected):
        terminalreporter.write_line(line)
