"""What a strategy draws: its examples' tags, collected until every wanted one has come.

The "is every value drawn" tests draw hundreds of full scenarios (tens of
milliseconds each) to be sure that a rare value comes up; most values come
within the first few dozen draws.  Stopping once the wanted ones have all come
keeps the bound (a value never drawn in `max_examples` still fails the test)
without paying for the draws after the last one was seen.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st


class _AllSeen(Exception):
    """Ends the draws once every wanted tag has come (with no shrink phase, nothing follows)."""


def tags_drawn(
    strategy: st.SearchStrategy,
    tags_of: Callable[[object], Iterable[str]],
    wanted: set[str] | None,
    *,
    max_examples: int,
    seen: set[str] | None = None,
    derandomize: bool = False,
) -> set[str]:
    """The tags of up to `max_examples` draws of `strategy`, added to `seen` (a new set if None);
    the draws stop as soon as `wanted` is a subset of it (None: never; for a test
    that checks what is *not* drawn)."""
    seen = set() if seen is None else seen

    @given(strategy)
    @settings(max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate],
              derandomize=derandomize, suppress_health_check=list(HealthCheck))
    def collect(example):
        seen.update(tags_of(example))
        if wanted is not None and wanted <= seen:
            raise _AllSeen

    with contextlib.suppress(_AllSeen):
        collect()
    return seen
