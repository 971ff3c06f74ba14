"""Property 8, no side effects: getting (or saving) the state changes nothing.

Neither the parameters nor the optimizer state (entries, values, step counts,
hyperparameters) may change, including an optimizer that has no state yet:
creating state there changes what the next step does (Adam's bias correction
counts steps).  Compared locally on every rank, bitwise.
"""

from __future__ import annotations

from ..backends import make_backend
from ..scenario import Scenario
from ._steps import Checks, local_snapshot, save_state, source


def side_effects(ctx, scenario: Scenario, backend_spec: str, options, directory: str | None = None) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    with ctx.phase("snapshot"):
        before = local_snapshot(src)
    save_state(ctx, backend, src, options, directory)
    with ctx.phase("compare"):
        after = local_snapshot(src)
        checks = Checks()
        checks.equal(before["osd"], after["osd"], f"side effects (optimizer before vs after {'save' if options.storage else 'get'})")
        checks.equal(before["params"], after["params"], "side effects (parameters before vs after)")
        checks.done()
    return {}
