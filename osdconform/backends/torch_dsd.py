"""The ``torch-dsd`` backend: ``torch.distributed.checkpoint.state_dict``.

Calls ``get_optimizer_state_dict`` / ``set_optimizer_state_dict`` on the trained
model (the DDP wrapper, the FSDP2-sharded module) exactly as users call them.
"""

from __future__ import annotations

from typing import Any

from ..scenario import Workload
from ._protocol import ALL_PLANS, Capabilities, StateOptions

#: Every plan but ``zero``: torch.distributed.checkpoint.state_dict does not
#: support ZeroRedundancyOptimizer (its get calls ``state_dict()``, which
#: raises until ``consolidate_state_dict()`` ran); the ``zero`` backend does.
#: Under ``pp`` each rank calls it on its stage's module and optimizers, and
#: expected failures are judged per stage (`XfailEntry.applies`).
DSD_PLANS = ALL_PLANS - {"zero"}


def _torch_options(options: StateOptions):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(
        full_state_dict=options.full,
        cpu_offload=options.cpu_offload,
        broadcast_from_rank0=options.broadcast_from_rank0,
        flatten_optimizer_state_dict=options.flatten,
    )


class TorchDSDBackend:
    name = "torch-dsd"
    capabilities = Capabilities(
        full=True,
        sharded=True,
        flatten=True,
        cpu_offload=True,
        broadcast_from_rank0=True,
        plans=DSD_PLANS,
    )

    def get_optimizer_state(self, workload: Workload, options: StateOptions) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(
            workload.model, workload.optimizers, options=_torch_options(options)
        )

    def set_optimizer_state(
        self, workload: Workload, osd: dict[str, Any], options: StateOptions
    ) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(
            workload.model, workload.optimizers, osd, options=_torch_options(options)
        )
