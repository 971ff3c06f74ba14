"""Faults only a pipeline shows: ranks that hold different parameters."""

from __future__ import annotations

import torch.distributed as dist

from osdconform.backends.reference import ReferenceBackend


class CheckpointsRankZerosStageOnly(ReferenceBackend):
    """Lightning-AI/pytorch-lightning#5567 (a pipelined model's checkpoint held
    rank 0's part only) and NVIDIA-NeMo/Automodel#3250 (pipeline stages
    published their optimizer parts under the same keys, one part winning):
    a checkpointer written for data parallelism, where every rank's optimizer
    holds the same state, consolidates on rank 0 and hands rank 0's dict to
    every rank.

    Under every other plan the full OSD is the same on every rank, so the
    fault changes nothing; under a pipeline every stage but the first gets
    the first stage's state instead of its own.

    Re-created over the reference: a full get returns rank 0's full OSD on
    every rank (broadcast from rank 0).
    """

    name = "checkpoints-rank-zeros-stage-only"
    over = "reference"
    reports = ("Lightning-AI/pytorch-lightning#5567", "NVIDIA-NeMo/Automodel#3250")

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        if not options.full or dist.get_world_size() == 1:
            return osd
        holder = [osd if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]
