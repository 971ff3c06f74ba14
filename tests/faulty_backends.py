"""Backends with one seeded fault each: the suites must catch every one.

Each is the reference backend with a single, realistic defect of the kind a
checkpointing backend ships with.  tests/nocover/test_suite_catches_faults.py
runs the real suite (a pytest subprocess) against each and checks that it
fails, and fails with a message that points at the fault.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from osdconform.backends.reference import ReferenceBackend


class DropsStateOnSet(ReferenceBackend):
    """Set forgets the last state entry of every parameter (Adam's ``exp_avg_sq``,
    SGD's momentum buffer, ...), so every optimizer that keeps state is hit."""

    name = "drops-state-on-set"

    def set_optimizer_state(self, workload, osd, options):
        osd = {**osd, "state": {fqn: dict(list(st.items())[:-1]) for fqn, st in osd["state"].items()}}
        super().set_optimizer_state(workload, osd, options)


class StaleGet(ReferenceBackend):
    """Get returns the first OSD this instance produced; set does nothing.

    Its own get-after-set agrees with its get-before-set, so only the
    reference's view of the loaded optimizer can catch it.
    """

    name = "stale-get"

    def get_optimizer_state(self, workload, options):
        if not hasattr(self, "_first"):
            self._first = super().get_optimizer_state(workload, options)
        return self._first

    def set_optimizer_state(self, workload, osd, options):
        return None


class ScalesOnGet(ReferenceBackend):
    """Get doubles ``exp_avg``/``momentum_buffer``; set halves them: round trips, but lies."""

    name = "scales-on-get"
    _KEYS = ("exp_avg", "momentum_buffer")

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        for st in osd["state"].values():
            for k in self._KEYS:
                if k in st:
                    st[k] = st[k] * 2
        return osd

    def set_optimizer_state(self, workload, osd, options):
        for st in osd["state"].values():
            for k in self._KEYS:
                if k in st:
                    st[k] = st[k] / 2
        super().set_optimizer_state(workload, osd, options)


class CorruptsLastRankShard(ReferenceBackend):
    """Sharded set zeroes the local shard on the last rank of a world of 2 or more."""

    name = "corrupts-last-rank-shard"

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        world = dist.get_world_size()
        if options.full or world < 2 or workload.rank != world - 1:
            return
        with torch.no_grad():
            for st in (st for opt in workload.optimizers for st in opt.state.values()):
                for v in st.values():
                    if isinstance(v, torch.Tensor) and v.dim() > 0:
                        local = v.to_local() if hasattr(v, "to_local") else v
                        local.zero_()


class HangsOnSet(ReferenceBackend):
    """Rank 0 waits in a barrier that no other rank enters (at world size >= 2)."""

    name = "hangs-on-set"

    def set_optimizer_state(self, workload, osd, options):
        if dist.get_world_size() >= 2 and workload.rank == 0:
            dist.barrier()
        super().set_optimizer_state(workload, osd, options)
