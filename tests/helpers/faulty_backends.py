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
from osdconform.reference._fqn import user_fqn


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


# -- one fault per property of the contract (3 to 9) -------------------------------


class ReshardDropsUnevenState(ReferenceBackend):
    """Reshard: set drops the state of parameters whose dim 0 does not split evenly
    over a world size other than the one the OSD was saved at (a naive resharder)."""

    name = "reshard-drops-uneven-state"
    _WORLD = "saved_world_size"

    def get_optimizer_state(self, workload, options):
        return {**super().get_optimizer_state(workload, options), self._WORLD: dist.get_world_size()}

    def set_optimizer_state(self, workload, osd, options):
        osd = dict(osd)
        saved_world = osd.pop(self._WORLD)
        world = dist.get_world_size()
        if saved_world != world:
            shapes = {user_fqn(n): tuple(p.shape) for n, p in workload.module.named_parameters()}
            osd["state"] = {
                fqn: st for fqn, st in osd["state"].items()
                if not shapes[fqn] or shapes[fqn][0] % world == 0
            }
        super().set_optimizer_state(workload, osd, options)


class ResetsParamsOnSet(ReferenceBackend):
    """Resume: set loads the optimizer state, then re-initialises the model's parameters."""

    name = "resets-params-on-set"

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        with torch.no_grad():
            for p in workload.module.parameters():
                (p.to_local() if hasattr(p, "to_local") else p).zero_()


class FlatGroupsByIndex(ReferenceBackend):
    """Flatten: keys hyperparameters by group index (``param_groups.<i>.<hp>``), not by FQN;
    its own set reads that back, so its round trips pass."""

    name = "flat-groups-by-index"
    capabilities = ReferenceBackend.capabilities

    def get_optimizer_state(self, workload, options):
        from osdconform import reference as ref

        osd = ref.full_osd(workload.module, workload.optimizers) if options.full else \
            ref.sharded_osd(workload.module, workload.optimizers)
        if not options.flatten:
            return osd
        flat = {f"state.{fqn}.{k}": v for fqn, st in osd["state"].items() for k, v in st.items()}
        for i, g in enumerate(osd["param_groups"]):
            flat.update({f"param_groups.{i}.{k}": v for k, v in g.items()})
        return flat

    def set_optimizer_state(self, workload, osd, options):
        from osdconform import reference as ref

        if options.flatten:
            layout = ref.group_layout(workload.module, workload.optimizers)
            fqns = sorted({f for g in layout for f in g}, key=len, reverse=True)
            state: dict = {}
            for key, v in osd.items():
                if key.startswith("state."):
                    rest = key[len("state."):]
                    fqn = next(f for f in fqns if rest.startswith(f + "."))
                    state.setdefault(fqn, {})[rest[len(fqn) + 1:]] = v
            groups = [
                {k.split(".", 2)[2]: v for k, v in osd.items() if k.startswith(f"param_groups.{i}.")}
                for i in range(len(layout))
            ]
            osd = {"state": state, "param_groups": groups}
        ref.load_osd(workload.module, workload.optimizers, osd)


class UnshardsStateOnSet(ReferenceBackend):
    """Types: set loads the state of DTensor parameters as whole plain tensors.

    The values are right (the reference gather of the loaded optimizer agrees),
    but the state no longer has its parameter's DTensor-ness and placements."""

    name = "unshards-state-on-set"

    def set_optimizer_state(self, workload, osd, options):
        from torch.distributed.tensor import DTensor

        from osdconform import reference as ref

        super().set_optimizer_state(workload, osd, options)
        for opt in workload.optimizers:
            for st in opt.state.values():
                for k, v in list(st.items()):
                    if isinstance(v, DTensor):
                        st[k] = ref.unshard(v)


class AliasesOnSet(ReferenceBackend):
    """Isolation: set keeps the caller's tensors instead of copies (full form)."""

    name = "aliases-on-set"

    def set_optimizer_state(self, workload, osd, options):
        from osdconform import reference as ref

        super().set_optimizer_state(workload, osd, options)
        if not options.full or options.flatten:
            return
        names = ref.param_fqns(workload.module)
        for opt in workload.optimizers:
            for p, st in opt.state.items():
                given = osd["state"].get(names[id(p)], {})
                for k, v in given.items():
                    if isinstance(v, torch.Tensor) and isinstance(st.get(k), torch.Tensor) \
                            and type(v) is type(st[k]) and v.shape == st[k].shape:
                        st[k] = v


class GetInitialisesState(ReferenceBackend):
    """Side effects: get on an optimizer without state first runs a zero-gradient step,
    so that every parameter has state to return (what torch-dsd does)."""

    name = "get-initialises-state"

    def get_optimizer_state(self, workload, options):
        for opt in workload.optimizers:
            if not opt.state:
                for g in opt.param_groups:
                    for p in g["params"]:
                        p.grad = torch.zeros_like(p)
                lrs = [g["lr"] for g in opt.param_groups]
                for g in opt.param_groups:
                    g["lr"] = 0.0
                opt.step()
                for g, lr in zip(opt.param_groups, lrs):
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
        return super().get_optimizer_state(workload, options)


class SetSkipsValidation(ReferenceBackend):
    """Errors: set hands the OSD to ``optimizer.load_state_dict`` by position, unchecked."""

    name = "set-skips-validation"

    def set_optimizer_state(self, workload, osd, options):
        from osdconform import reference as ref

        layout = ref.group_layout(workload.module, workload.optimizers)
        first = 0
        for opt in workload.optimizers:
            groups = osd["param_groups"][first:first + len(opt.param_groups)]
            fqns = [f for g in layout[first:first + len(opt.param_groups)] for f in g]
            index = {f: i for i, f in enumerate(fqns)}
            opt.load_state_dict({
                "state": {index[f]: st for f, st in osd["state"].items() if f in index},
                "param_groups": [
                    {**g, "params": [index[f] for f in g["params"] if f in index]} for g in groups
                ],
            })
            first += len(opt.param_groups)


class KeepsLrOnSet(ReferenceBackend):
    """Schedulers: set loads everything but ``lr``, which keeps the target optimizer's
    own value (a loader that treats the learning rate as configuration, not state).

    Without a scheduler the source's lr is the one the fresh optimizer was built
    with, so only property 10, whose scenarios have moved it, can see this.
    """

    name = "keeps-lr-on-set"

    def set_optimizer_state(self, workload, osd, options):
        before = [g["lr"] for opt in workload.optimizers for g in opt.param_groups]
        super().set_optimizer_state(workload, osd, options)
        groups = [g for opt in workload.optimizers for g in opt.param_groups]
        for g, lr in zip(groups, before):
            g["lr"] = lr
