"""Property 1, round trip: get -> set into fresh objects -> get gives an equal OSD.

Why two checks: comparing the backend's own ``get`` before and after a ``set``
cannot see a pair of faults that cancel out (a ``get`` that drops a key and a
``set`` that ignores its input agree with each other).  So the loaded
optimizer is also judged by the reference: the reference gather of its live
state must equal the reference gather of the source's.  Through storage
(``options.storage``) only the second check applies: there is no OSD in hand.
"""

from __future__ import annotations

from ..backends import make_backend
from ..scenario import Scenario
from ._steps import assert_all_equal, fresh, gather, load_state, save_state, source, summary


def roundtrip(ctx, scenario: Scenario, backend_spec: str, options, directory: str | None = None) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    first = save_state(ctx, backend, src, options, directory)
    src_live = gather(ctx, src, "source")
    dst = fresh(ctx, scenario, backend)
    load_state(ctx, backend, dst, first, options, directory)
    pairs = []
    if not options.storage:
        with ctx.phase("get after set"):
            second = backend.get_optimizer_state(dst, options)
        pairs.append((first, second, "round trip (backend get before vs after set)"))
    dst_live = gather(ctx, dst, "loaded")
    pairs.append((src_live, dst_live, "round trip (reference gather of source vs loaded optimizer)"))
    with ctx.phase("compare"):
        assert_all_equal(pairs)
    return summary(src_live)
