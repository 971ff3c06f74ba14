"""The ``zero`` backend: ``ZeroRedundancyOptimizer.consolidate_state_dict`` / ``load_state_dict``.

Under the ``zero`` plan each rank's optimizer keeps the state of its own
partition of the parameters.  A full get consolidates every partition on
rank 0 (``consolidate_state_dict(to=0)``, then ``state_dict()`` there), and
shares it with the other ranks, as a job that saves from rank 0 and resumes
on every rank does; a set hands the full dict to every rank's
``load_state_dict``, which keeps its own partition.  The dict is converted to
the canonical FQN-keyed form at the boundary (`_native`).
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

from ..scenario import Workload
from ._native import split_osd, to_canonical, to_native
from ._protocol import Capabilities, StateOptions


class ZeroBackend:
    name = "zero"
    capabilities = Capabilities(full=True, sharded=False, plans=frozenset({"zero"}))

    def get_optimizer_state(self, workload: Workload, options: StateOptions) -> dict[str, Any]:
        out = {"state": {}, "param_groups": []}
        for zero in workload.optimizers:
            zero.consolidate_state_dict(to=0)
            holder = [zero.state_dict() if dist.get_rank() == 0 else None]
            dist.broadcast_object_list(holder, src=0)
            osd = to_canonical(holder[0], workload.module, zero.param_groups)
            out["state"].update(osd["state"])
            out["param_groups"] += osd["param_groups"]
        return out

    def set_optimizer_state(self, workload: Workload, osd: dict[str, Any], options: StateOptions) -> None:
        parts = split_osd(osd, [len(zero.param_groups) for zero in workload.optimizers])
        for zero, part in zip(workload.optimizers, parts):
            zero.load_state_dict(to_native(part, workload.module, zero.param_groups))
