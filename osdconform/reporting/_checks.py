"""Problems per check: how often each check of a property failed, and how often as expected.

Every check of an example runs and each problem is judged on its own against
the expected failures (`expected_failures.explained_problems`), so a run can
say, per property and check, how many problems nothing explained (``failed``)
and how many a recorded defect did (``xfailed``): which checks find the bugs,
and which are busy with known ones.  A check is named as its messages name it
(`expected_failures.check_of`); passing examples add nothing here (they are
the ``passed`` counts of the matrix).
"""

from __future__ import annotations

from typing import Any


def problems_per_check(report: Any) -> dict[tuple[str, str], dict[str, int]]:
    """(property, check) -> {"failed": n, "xfailed": m} of one report."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for (prop, check, outcome), n in report.checks.items():
        counts = out.setdefault((prop, check), {"failed": 0, "xfailed": 0})
        counts[outcome] = counts.get(outcome, 0) + n
    return out


def render_checks(reports: list[Any]) -> str:
    """The Markdown table of `problems_per_check`, a row per backend, property and check."""
    lines = [
        "| property | backend | check | failed | xfailed |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in reports:
        for (prop, check), counts in sorted(problems_per_check(r).items()):
            cell = check.replace("|", "\\|")
            lines.append(f"| {prop} | {r.backend} | {cell} | {counts['failed']} | {counts['xfailed']} |")
    return "\n".join(lines) if len(lines) > 2 else "no example failed in this run"
