"""The ``torch-dcp`` backend: ``torch.distributed.checkpoint`` save / load through a directory.

What distributed training jobs do: the sharded OSD from
``get_optimizer_state_dict`` is written with ``dcp.save`` (or ``dcp.async_save``,
waited for) to a real directory; loading gets a template OSD from the target
objects, fills it with ``dcp.load`` (which reshards to the target's world size
and plan) and hands it to ``set_optimizer_state_dict``.
"""

from __future__ import annotations

from ..scenario import Workload
from ._protocol import Capabilities, StateOptions
from .torch_dsd import DSD_PLANS

KEY = "optimizer"


class TorchDCPBackend:
    name = "torch-dcp"
    capabilities = Capabilities(
        full=False, sharded=False, checkpoint=True, async_save=True, plans=DSD_PLANS
    )

    def save_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = {KEY: get_optimizer_state_dict(workload.model, workload.optimizers)}
        if options.async_save:
            dcp.async_save(state, checkpoint_id=directory).result()
        else:
            dcp.save(state, checkpoint_id=directory)

    def load_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        state = {KEY: get_optimizer_state_dict(workload.model, workload.optimizers)}
        dcp.load(state, checkpoint_id=directory)
        set_optimizer_state_dict(workload.model, workload.optimizers, state[KEY])
