"""Property 2, fidelity: the backend's full OSD is the optimizer's true state.

The backend's full get must equal the reference gather of the ranks' live
local state.  The reference gathers *after* the backend's get, so a get that
changes the optimizer (a side effect: property 8) is not blamed here.
"""

from __future__ import annotations

from .. import reference as ref
from ..backends import make_backend
from ..compare import assert_osd_equal
from ..scenario import Scenario
from ._steps import gather, source, summary


def fidelity(ctx, scenario: Scenario, backend_spec: str, options) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario)
    with ctx.phase("get"):
        got = backend.get_optimizer_state(src, options)
    expected = gather(ctx, src, "live state")
    if options.flatten:
        expected = ref.flatten(expected)
    with ctx.phase("compare"):
        if options.cpu_offload and ctx.rank != 0:
            # torch's documented cpu_offload contract: only rank 0 receives the dict.
            assert got == {}, f"cpu_offload: rank {ctx.rank} got a non-empty OSD"
        else:
            assert_osd_equal(expected, got, context="fidelity (reference gather vs backend full get)")
    return summary(expected)
