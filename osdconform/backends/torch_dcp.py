"""The ``torch-dcp`` backend: ``torch.distributed.checkpoint`` save / load through a directory.

What distributed training jobs do: the sharded OSD from
``get_optimizer_state_dict`` is written with ``dcp.save`` (or ``dcp.async_save``,
returned in flight) to a real directory; loading gets a template OSD from the target
objects, fills it with ``dcp.load`` (which reshards to the target's world size
and plan) and hands it to ``set_optimizer_state_dict``.
"""

from __future__ import annotations

from typing import Any

from ..scenario import Workload
from ._protocol import Capabilities, StateOptions
from .torch_dsd import DSD_PLANS

KEY = "optimizer"

#: (default group, the gloo group async saves use) of this process's world.
_ASYNC_GROUP: list = []


def _async_save_group() -> Any:
    """A gloo group of its own for ``dcp.async_save``, made once per world.

    The save's collectives (planning, metadata) run in DCP's thread while
    training's run on the default group; on one group the two interleave in
    a different order on each rank.  torchtitan makes one the same way
    (``dist.new_group(backend="gloo")``); every rank calls this in the same
    save, as ``new_group`` needs.
    """
    import torch.distributed as dist

    world = dist.group.WORLD
    if not _ASYNC_GROUP or _ASYNC_GROUP[0] is not world:
        _ASYNC_GROUP[:] = [world, dist.new_group(backend="gloo")]
    return _ASYNC_GROUP[1]


class TorchDCPBackend:
    name = "torch-dcp"
    capabilities = Capabilities(
        full=False, sharded=False, checkpoint=True, async_save=True, plans=DSD_PLANS
    )

    def save_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> Any:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = {KEY: get_optimizer_state_dict(workload.model, workload.optimizers)}
        if options.async_save:
            # In flight: the suite trains on and waits on the Future (the protocol).
            return dcp.async_save(state, checkpoint_id=directory, process_group=_async_save_group())
        dcp.save(state, checkpoint_id=directory)
        return None

    def load_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_optimizer_state_dict,
            set_optimizer_state_dict,
        )

        state = {KEY: get_optimizer_state_dict(workload.model, workload.optimizers)}
        dcp.load(state, checkpoint_id=directory)
        set_optimizer_state_dict(workload.model, workload.optimizers, state[KEY])
