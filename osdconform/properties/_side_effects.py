"""Property 8, no side effects: getting (or saving) the state changes nothing.

Neither the parameters nor the optimizer state (entries, values, step counts,
hyperparameters) may change, including an optimizer that has no state yet:
creating state there changes what the next step does (Adam's bias correction
counts steps).  Compared locally on every rank, bitwise.
"""

from __future__ import annotations

from ..backends import make_backend
from ..compare import assert_osd_equal
from ..scenario import Scenario
from ._steps import local_snapshot, save_state, source


def side_effects(ctx, scenario: Scenario, backend_spec: str, options, directory: str | None = None) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    with ctx.phase("snapshot"):
        before = local_snapshot(src)
    save_state(ctx, backend, src, options, directory)
    with ctx.phase("compare"):
        after = local_snapshot(src)
        assert_osd_equal(before["osd"], after["osd"], context=f"side effects (optimizer before vs after {'save' if options.storage else 'get'})")
        assert_osd_equal(before["params"], after["params"], context="side effects (parameters before vs after)")
    return {}
