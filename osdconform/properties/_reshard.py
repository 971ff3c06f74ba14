"""Property 3, reshard: save at world size W1 with plan P1, load at W2 with P2.

Two tasks in two worlds.  `reshard_save` runs at W1 and hands the driver the
reference gather of the source (and, in memory, the backend's full OSD);
`reshard_load` runs at W2 with another plan, loads, and compares the reference
gather of the loaded optimizer with the source's.  Through storage the state
travels in the directory; in memory only the full OSD can travel (a sharded
OSD holds DTensors on W1's mesh), so that is the form used there.
"""

from __future__ import annotations

from ..backends import make_backend
from ..scenario import Scenario
from ._steps import assert_all_equal, fresh, gather, load_state, save_state, source


def reshard_save(ctx, scenario: Scenario, backend_spec: str, options, directory: str | None) -> dict | None:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    saved = save_state(ctx, backend, src, options, directory)
    expected = gather(ctx, src, "source")
    # Everything the driver needs is on rank 0; the others return nothing.
    return {"expected": expected, "saved": saved} if ctx.rank == 0 else None


def reshard_load(
    ctx, scenario: Scenario, backend_spec: str, options, directory: str | None, saved, expected: dict
) -> None:
    backend = make_backend(backend_spec)
    dst = fresh(ctx, scenario, backend)
    load_state(ctx, backend, dst, saved, options, directory)
    loaded = gather(ctx, dst, "loaded")
    with ctx.phase("compare"):
        assert_all_equal([(expected, loaded, "reshard (reference gather of source vs loaded optimizer)")])
