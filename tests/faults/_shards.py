"""Uneven and empty shards: a rank whose piece of a parameter is short, or empty."""

from __future__ import annotations

import torch
import torch.distributed as dist

from osdconform.backends.fsdp1 import FSDP1Backend
from osdconform.backends.torch_dsd import TorchDSDBackend

from ._kit import live_entries, local


class EmptyShardStateDropped(TorchDSDBackend):
    """pytorch/pytorch#136228 and #108869: a rank whose shard of a parameter
    was empty (more ranks than rows) lost that parameter's state.

    Re-created: after a sharded set, a rank drops the state of every
    parameter whose local shard is empty.
    """

    name = "empty-shard-state-dropped"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#136228", "pytorch/pytorch#108869")

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        for opt in workload.optimizers:
            for p in list(opt.state):
                if local(p).numel() == 0 and p.numel() > 0:
                    del opt.state[p]


class UnevenShardLosesLastElement(FSDP1Backend):
    """pytorch/pytorch#102821: with FSDP1, optimizer state of a parameter that
    did not split evenly over the ranks came back wrong at the end.

    Re-created: after a set at world size 2 or more, the last rank zeroes the
    last element of every state tensor it holds (where FSDP1 keeps padding: a
    real value there is lost).
    """

    name = "uneven-shard-loses-last-element"
    over = "fsdp1"
    reports = ("pytorch/pytorch#102821",)

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        world = dist.get_world_size()
        if world < 2 or workload.rank != world - 1:
            return
        with torch.no_grad():
            for _, entry in live_entries(workload):
                for value in entry.values():
                    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.numel() > 0:
                        local(value).view(-1)[-1:].zero_()
