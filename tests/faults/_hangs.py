"""Hangs: a collective that some ranks enter and others do not."""

from __future__ import annotations

import torch.distributed as dist

from osdconform.backends.torch_dsd import TorchDSDBackend


class FullSetHangsOnShardedPlans(TorchDSDBackend):
    """pytorch/pytorch#157781 (full-state set with FSDP2 + TP hangs) and
    #134095: a full set on a sharded plan waited in a collective that the
    other ranks never entered.

    Re-created: on a sharded plan (fsdp2, fsdp2+tp, tp) at world size 2 or
    more, rank 0 enters a barrier of its own during a full set.
    """

    name = "full-set-hangs-on-sharded-plans"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#157781", "pytorch/pytorch#134095")

    def set_optimizer_state(self, workload, osd, options):
        plan = workload.scenario.plan.kind
        if options.full and plan in ("fsdp2", "fsdp2+tp", "tp") and dist.get_world_size() >= 2 \
                and dist.get_rank() == 0:
            dist.barrier()
        super().set_optimizer_state(workload, osd, options)
