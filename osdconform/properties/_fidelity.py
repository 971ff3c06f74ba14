"""Property 2, fidelity: the backend's full OSD is the optimizer's true state.

The backend's full get must equal the reference gather of the ranks' live
local state (bitwise), and that must equal the golden twin's optimizer state:
the same scenario trained in one process without any plan on the same global
data (within the tolerance of the model's dtypes, `golden_tolerance`, since
reductions run in another order).  The reference gathers *after* the
backend's get, so a get that changes the optimizer (a side effect: property 8)
is not blamed on the gather; it shows as a difference from the twin.

Under a pipeline (plan ``pp``) each rank's gather is its stage's part of
the state, so every rank compares its own with the twin's cut to the stage.

With ``cpu_offload`` the backend hands over every tensor on the CPU, so the
gather is compared once moved there (`placed`); on CPU runs that changes
nothing, on CUDA it is the option's contract.
"""

from __future__ import annotations

from .. import reference as ref
from ..backends import make_backend
from ..golden import golden_stage_osd, golden_tolerance
from ..scenario import Scenario
from ._devices import placed
from ._steps import Checks, gather, source, summary


def fidelity(ctx, scenario: Scenario, backend_spec: str, options) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    with ctx.phase("get"):
        got = backend.get_optimizer_state(src, options)
    live = gather(ctx, src, "live state")
    expected = placed(live, "cpu") if options.cpu_offload else live
    expected = ref.flatten(expected) if options.flatten else expected
    checks = Checks()
    with ctx.phase("compare"):
        if options.cpu_offload and ctx.rank != 0:
            # torch's documented cpu_offload contract: only rank 0 receives the dict.
            if got != {}:
                checks.fail(f"cpu_offload: rank {ctx.rank} got a non-empty OSD")
        else:
            checks.equal(expected, got, "fidelity (reference gather vs backend full get)")
    # One twin is enough where the gather is the same on every rank; under a
    # pipeline each rank holds its stage's part (`golden_stage_osd`).
    if ctx.rank == 0 or scenario.plan.kind == "pp":
        with ctx.phase("golden twin"):
            golden = golden_stage_osd(scenario, ctx.device, ctx.rank)
        with ctx.phase("compare with the golden twin"):
            checks.equal(
                golden, live, "fidelity (golden twin vs reference gather of the live state)",
                tolerance=golden_tolerance(scenario.model, scenario.plan),
            )
    checks.done()
    return summary(live)
