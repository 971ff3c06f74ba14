"""The shipped expected-failure files: their ``space`` markings are honest.

A core run warns about every ``space: core`` entry that matched nothing, and
is silent about ``space: full`` ones.  So each core entry must be one some
core example can match (else every core run warns about it), and no full
entry may be one a core example matches (else a core run would hide that it
went stale).  `helpers.xfail_spaces.core_witnesses` searches the core space the
plugin draws for each backend, under every form, fault and step it can be
given; a witness proves an entry is core, and the search is derandomized,
so the test is stable.
"""

from __future__ import annotations

import pytest

from helpers.xfail_spaces import core_witnesses
from osdconform.expected_failures import SHIPPED_DIR, shipped_xfails

BACKENDS = sorted(p.stem for p in SHIPPED_DIR.glob("*.txt"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_space_markings_of_the_shipped_entries_are_honest(backend):
    from osdconform.backends import BackendNotInstalled

    entries = shipped_xfails(backend)
    try:
        witnessed = core_witnesses(backend, entries)
    except BackendNotInstalled as exc:  # a framework adapter's extra is not installed here
        pytest.skip(str(exc))
    no_witness = [e.where for e in entries if e.space == "core" and e.where not in witnessed]
    assert not no_witness, f"no core example matches these core entries (mark them 'space: full'?): {no_witness}"
    matched = [e.where for e in entries if e.space == "full" and e.where in witnessed]
    assert not matched, f"a core example matches these 'space: full' entries (they are core): {matched}"


def test_the_readme_list_of_known_defects_is_the_commands_output():
    """The README's list is generated (``osdconform xfails --markdown``), so it cannot drift from the files."""
    from pathlib import Path

    from osdconform.expected_failures._listing import README_BEGIN, README_END, render_markdown, shipped_backends

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert readme.count(README_BEGIN) == 1 and readme.count(README_END) == 1
    block = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert block.strip("\n") == render_markdown(shipped_backends()).strip("\n"), (
        "README.md's list of known defects differs from the files: paste the output of "
        "`python -m osdconform.expected_failures --markdown` between its marker comments"
    )


def test_xfails_command_lists_entries_of_a_backend_or_a_file(tmp_path, capsys):
    from osdconform.cli import main

    assert main(["xfails", "zero"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("zero: 5 entries (1 of the full space only), osdconform/expected_failures/zero.txt")
    assert "zero.txt:4  isolation  [core]" in out and "      when:       trains_state(s)" in out
    own = tmp_path / "mine.txt"
    own.write_text("# My backend.\nproperty: roundtrip\nwhen: True\nmatch: x\nreason: a bug\nreproducer: n/a\nspace: full\n")
    assert main(["xfails", "--markdown", str(own)]) == 0
    assert capsys.readouterr().out == (
        "#### `mine.txt`\n\nMy backend.\n\nOnly in the full space (`--osd-space=full`):\n\n"
        "- **roundtrip** (`mine.txt:2`): a bug (n/a)\n"
    )
    assert main(["xfails", "no-such-backend"]) == 2
    assert "no expected-failures file shipped for backend 'no-such-backend'" in capsys.readouterr().err
