"""Resharding: a checkpoint loaded at another world size than it was saved at."""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist

from osdconform.backends.torch_dcp import TorchDCPBackend
from osdconform.backends.zero import ZeroBackend

from ._kit import live_entries, local, map_entries

WORLD_FILE = "saved-world.json"


class ZeroReshardKeepsOldPartition(ZeroBackend):
    """pytorch/pytorch#65650 and microsoft/DeepSpeed#2898: loading a ZeRO
    checkpoint at another world size kept the saved world's partitioning, so
    some parameters' state was never loaded.

    Re-created: at another world size than the get's, set loads only the
    state of the parameters whose index the saved world's round-robin gives
    this rank.
    """

    name = "zero-reshard-keeps-old-partition"
    over = "zero"
    reports = ("pytorch/pytorch#65650", "microsoft/DeepSpeed#2898")

    def get_optimizer_state(self, workload, options):
        return {**super().get_optimizer_state(workload, options), "saved_world_size": dist.get_world_size()}

    def set_optimizer_state(self, workload, osd, options):
        osd = dict(osd)
        saved = osd.pop("saved_world_size")
        world, rank = dist.get_world_size(), dist.get_rank()
        if saved != world:
            order = [f for g in osd["param_groups"] for f in g["params"]]
            mine = {f for i, f in enumerate(order) if i % saved == rank % saved}
            osd = map_entries(osd, lambda fqn, e: e if fqn in mine else None)
        super().set_optimizer_state(workload, osd, options)


class DCPReshardSkipsMissingRanks(TorchDCPBackend):
    """pytorch/pytorch#91205: a sharded checkpoint loaded into a smaller world
    read only the shards of ranks that still existed.

    Re-created: loaded at a smaller world size than saved, the state of every
    parameter whose position the saved world gave a rank the new world lacks
    is zeroed.
    """

    name = "dcp-reshard-skips-missing-ranks"
    over = "torch-dcp"
    reports = ("pytorch/pytorch#91205",)

    def save_checkpoint(self, workload, directory, options):
        pending = super().save_checkpoint(workload, directory, options)
        if dist.get_rank() == 0:
            with open(os.path.join(directory, WORLD_FILE), "w") as fh:
                json.dump(dist.get_world_size(), fh)
        return pending  # an async save in flight

    def load_checkpoint(self, workload, directory, options):
        super().load_checkpoint(workload, directory, options)
        with open(os.path.join(directory, WORLD_FILE)) as fh:
            saved = json.load(fh)
        world = dist.get_world_size()
        if saved <= world:
            return
        order = sorted(fqn for fqn, _ in workload.module.named_parameters())
        lost = {f for i, f in enumerate(order) if i % saved >= world}
        with torch.no_grad():
            for fqn, entry in live_entries(workload):
                if fqn in lost:
                    for value in entry.values():
                        if isinstance(value, torch.Tensor) and value.dim() > 0:
                            local(value).zero_()
