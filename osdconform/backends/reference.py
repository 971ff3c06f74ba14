"""The ``reference`` backend: the oracle itself, driven through the backend protocol.

Running the suites against it checks the reference end to end (and is the
suites' default); its own correctness is checked in tests/ against torch's
DTensor and by the properties that compare with independent computations.
"""

from __future__ import annotations

from typing import Any

from .. import reference as ref
from ..scenario import Workload
from ._protocol import ALL_PLANS, Capabilities, StateOptions


class ReferenceBackend:
    name = "reference"
    capabilities = Capabilities(full=True, sharded=True, flatten=True, get_copies=True, plans=ALL_PLANS)

    def get_optimizer_state(self, workload: Workload, options: StateOptions) -> dict[str, Any]:
        if options.full:
            osd = ref.full_osd(workload.module, workload.optimizers)
        else:
            osd = ref.sharded_osd(workload.module, workload.optimizers)
        return ref.flatten(osd) if options.flatten else osd

    def set_optimizer_state(
        self, workload: Workload, osd: dict[str, Any], options: StateOptions
    ) -> None:
        if options.flatten:
            osd = ref.unflatten(osd, ref.group_layout(workload.module, workload.optimizers))
        ref.load_osd(workload.module, workload.optimizers, osd)
