"""The shipped expected-failure files: their ``space`` markings are honest.

A core run warns about every ``space: core`` entry that matched nothing, and
is silent about ``space: full`` ones.  So each core entry must be one some
core example can match (else every core run warns about it), and no full
entry may be one a core example matches (else a core run would hide that it
went stale).  `_xfail_spaces.core_witnesses` searches the core space the
plugin draws for each backend, under every form, fault and step it can be
given; a witness proves an entry is core, and the search is derandomized,
so the test is stable.
"""

from __future__ import annotations

import pytest

from _xfail_spaces import core_witnesses
from osdconform.expected_failures import SHIPPED_DIR, shipped_xfails

BACKENDS = sorted(p.stem for p in SHIPPED_DIR.glob("*.txt"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_space_markings_of_the_shipped_entries_are_honest(backend):
    entries = shipped_xfails(backend)
    witnessed = core_witnesses(backend, entries)
    no_witness = [e.where for e in entries if e.space == "core" and e.where not in witnessed]
    assert not no_witness, f"no core example matches these core entries (mark them 'space: full'?): {no_witness}"
    matched = [e.where for e in entries if e.space == "full" and e.where in witnessed]
    assert not matched, f"a core example matches these 'space: full' entries (they are core): {matched}"

