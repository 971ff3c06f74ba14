"""docs/findings.md stays complete: every reproducer is a finding's, every finding is whole.

The findings document triages every defect the expected failures record, one
section per finding (``### T01. ...`` for torch, ``### F01. ...`` for a
framework), each with the same bullets.  A reproducer added under
``osdconform/expected_failures/repro/`` without a finding, a finding that
names a script that is gone, a section without its kind or public issue, or a
summary or count table that no longer matches the sections fails here.  Plain
text checks: no torch, no processes.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "findings.md"
REPRO_DIR = ROOT / "osdconform" / "expected_failures" / "repro"
#: A finding's script: a reproducer, or the probe of a release floor (a scenario older torch cannot run).
REPRO_PATH = re.compile(r"osdconform/expected_failures/(?:repro|floors)/[\w.-]+\.py")
SECTION = re.compile(r"^### ([TF]\d{2})\. ", re.MULTILINE)
FIELDS = ("Reproducer", "Recorded by", "Violates", "Versions", "Kind", "Public issue")
#: The kinds a finding may have; the last is documented behaviour, not a bug.
KINDS = (
    "silent corruption of state",
    "loud failure on valid input",
    "bad input accepted",
    "error reporting",
    "hang",
    "documented limit",
)


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _sections() -> dict[str, str]:
    """Each finding's id and its section's text (up to the next ``##`` or ``###`` heading)."""
    text = _text()
    found = {}
    for match in SECTION.finditer(text):
        end = re.compile(r"^##", re.MULTILINE).search(text, match.end())
        found[match.group(1)] = text[match.start() : end.start() if end else len(text)]
    return found


def _field(section: str, name: str) -> str:
    match = re.search(rf"^- \*\*{re.escape(name)}:\*\* (.*(?:\n  .*)*)", section, re.MULTILINE)
    return " ".join(match.group(1).split()) if match else ""


def _kind(value: str) -> str | None:
    return next((k for k in KINDS if value.startswith(k)), None)


def test_every_reproducer_script_is_named_in_the_findings():
    named = {Path(p).name for p in REPRO_PATH.findall(_text())}
    scripts = {p.name for p in REPRO_DIR.glob("*.py")}
    assert scripts, f"no reproducer scripts under {REPRO_DIR}"
    missing = sorted(scripts - named)
    assert not missing, f"reproducers with no finding in docs/findings.md (add a section): {missing}"


def test_every_reproducer_named_in_the_findings_exists():
    gone = sorted({p for p in REPRO_PATH.findall(_text()) if not (ROOT / p).is_file()})
    assert not gone, f"docs/findings.md names reproducers that do not exist: {gone}"


def test_the_findings_have_unique_ids():
    ids = SECTION.findall(_text())
    assert ids, "no finding sections ('### T01. ...') in docs/findings.md"
    assert len(ids) == len(set(ids)), f"duplicate finding ids: {[i for i, n in Counter(ids).items() if n > 1]}"


@pytest.mark.parametrize("finding", sorted(_sections()))
def test_each_finding_has_every_field_and_a_known_kind(finding):
    section = _sections()[finding]
    missing = [f for f in FIELDS if not _field(section, f)]
    assert not missing, f"{finding}: missing bullets {missing}"
    assert REPRO_PATH.search(_field(section, "Reproducer")), f"{finding}: the Reproducer bullet names no script"
    assert _kind(_field(section, "Kind")), f"{finding}: unknown kind {_field(section, 'Kind')!r} (one of {KINDS})"
    issue = _field(section, "Public issue")
    if "none found" in issue:
        assert "```text" in section, f"{finding}: no public issue and no report ready to file"


def test_the_summary_lists_every_finding_with_its_kind():
    rows = {}
    for line in _text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"[TF]\d{2}", cells[0]):
            rows[cells[0]] = _kind(cells[3])
    sections = {i: _kind(_field(s, "Kind")) for i, s in _sections().items()}
    assert rows == sections, "the summary table's ids and kinds differ from the sections'"


def test_the_counts_per_kind_are_the_sections():
    counted = {}
    for line in _text().splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and _kind(cells[0]) and cells[1].isdigit():
            counted[_kind(cells[0])] = (int(cells[1]), int(cells[2]))
    kinds = Counter((i[0], _kind(_field(s, "Kind"))) for i, s in _sections().items())
    actual = {k: (kinds[("T", k)], kinds[("F", k)]) for k in KINDS if kinds[("T", k)] or kinds[("F", k)]}
    assert counted == actual, f"the counts per kind say {counted}, the sections {actual}"
