"""Rank tasks for tests/cover/test_plans.py and tests/cover/test_reference_plans.py.

Module-level functions run on every rank of a `WorldPool` world (see
``tests/helpers/rank_tasks.py`` for the conventions).  Checks are plain asserts and
`assert_osd_equal`, so a failure names the rank and the phase.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from osdconform import reference as ref
from osdconform.compare import assert_osd_equal
from osdconform.scenario import Scenario, build_workload, train


def _to_cpu(value):
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return value


def _layouts(osd: dict) -> dict:
    """How each state value is held on this rank: DTensor placements, or the local shape."""
    out = {}
    for fqn, values in osd[ref.STATE].items():
        for name, v in values.items():
            if isinstance(v, DTensor):
                out[f"{fqn}.{name}"] = ("dtensor", tuple(str(p) for p in v.placements), tuple(v.to_local().shape))
            elif isinstance(v, torch.Tensor):
                out[f"{fqn}.{name}"] = ("tensor", tuple(v.shape))
    return out


def load_gather(ctx, scenario: Scenario) -> dict:
    """full_osd -> load_osd into fresh objects -> full_osd is the same; likewise from the sharded OSD."""
    with ctx.phase("build"):
        src = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    with ctx.phase("train"):
        train(src, scenario.steps)
    with ctx.phase("gather"):
        full = ref.full_osd(src.module, src.optimizers)
        sharded = ref.sharded_osd(src.module, src.optimizers)
    for form, osd in (("full", full), ("sharded", sharded)):
        with ctx.phase(f"load {form}"):
            dst = build_workload(scenario, rank=ctx.rank, device=ctx.device, init_seed=scenario.seed + 1)
            ref.load_osd(dst.module, dst.optimizers, osd)
        with ctx.phase(f"compare after loading the {form} OSD"):
            assert_osd_equal(full, ref.full_osd(dst.module, dst.optimizers), context=f"{form}: full gather")
            assert_osd_equal(sharded, ref.sharded_osd(dst.module, dst.optimizers), context=f"{form}: local state")
    return {"full": _to_cpu(full), "layouts": _layouts(sharded), "local_entries": len(sharded[ref.STATE])}


# -- cross-checks of the reference against torch's own (allowed in tests) -------


def _workload(ctx, scenario: Scenario):
    with ctx.phase("build"):
        w = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    with ctx.phase("train"):
        train(w, scenario.steps)
    return w


def fsdp1_against_torch(ctx, scenario: Scenario) -> dict:
    """The reference's FSDP1 gather equals FSDP's own full optim state dict; ShardedTensors
    from FSDP's sharded optim state dict unshard to it and load back."""
    from torch.distributed.fsdp import (
        FullOptimStateDictConfig,
        FullStateDictConfig,
        ShardedOptimStateDictConfig,
        ShardedStateDictConfig,
        StateDictType,
    )
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from osdconform.reference._sharded_tensor import is_sharded_tensor

    w = _workload(ctx, scenario)
    (optimizer,) = w.optimizers
    with ctx.phase("reference gather"):
        ours = ref.full_osd(w.module, w.optimizers)
    with ctx.phase("FSDP full optim_state_dict"):
        FSDP.set_state_dict_type(
            w.model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(), FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=False)
        )
        theirs = FSDP.optim_state_dict(w.model, optimizer)
    assert_osd_equal(theirs[ref.STATE], ours[ref.STATE], context="FSDP full optim_state_dict vs reference gather")
    with ctx.phase("FSDP sharded optim_state_dict"):
        FSDP.set_state_dict_type(
            w.model, StateDictType.SHARDED_STATE_DICT, ShardedStateDictConfig(), ShardedOptimStateDictConfig()
        )
        sharded = FSDP.optim_state_dict(w.model, optimizer)
    # FSDP1 gives ShardedTensors on a 1-D world, DTensors on a 2-D (HYBRID_SHARD) mesh.
    sharded_values = [
        type(v).__name__ for s in sharded[ref.STATE].values() for v in s.values() if is_sharded_tensor(v) or isinstance(v, DTensor)
    ]
    with ctx.phase("unshard ShardedTensors"):
        from osdconform.reference._gather import _full_value

        whole = {fqn: {k: _full_value(v) for k, v in s.items()} for fqn, s in sharded[ref.STATE].items()}
    assert_osd_equal(ours[ref.STATE], whole, context="reference unshard of FSDP's ShardedTensors")
    with ctx.phase("load ShardedTensors"):
        dst = build_workload(scenario, rank=ctx.rank, device=ctx.device, init_seed=scenario.seed + 1)
        ref.load_osd(dst.module, dst.optimizers, {ref.STATE: sharded[ref.STATE], ref.PARAM_GROUPS: ours[ref.PARAM_GROUPS]})
    assert_osd_equal(ours, ref.full_osd(dst.module, dst.optimizers), context="gather after loading ShardedTensors")
    return {"state_entries": len(ours[ref.STATE]), "sharded_values": sorted(set(sharded_values))}


def zero_against_torch(ctx, scenario: Scenario) -> dict | None:
    """The reference's ZeRO gather equals ZeRO's own consolidated state dict (on rank 0)."""
    w = _workload(ctx, scenario)
    (zero,) = w.optimizers
    with ctx.phase("reference gather"):
        ours = ref.full_osd(w.module, w.optimizers)
    with ctx.phase("consolidate"):
        zero.consolidate_state_dict(to=0)
    if ctx.rank != 0:
        return None
    theirs = zero.state_dict()
    fqns = [fqn for group in ref.group_layout(w.module, w.optimizers) for fqn in group]
    by_fqn = {fqns[i]: s for i, s in theirs[ref.STATE].items()}
    assert_osd_equal(by_fqn, ours[ref.STATE], context="ZeRO consolidated state vs reference gather")
    local = sum(1 for s in zero.optim.state.values() if s)
    return {"state_entries": len(ours[ref.STATE]), "rank0_local_entries": local}


def refuses_flat_params(ctx) -> str:
    """FSDP1 without use_orig_params: the reference says why it cannot key the state."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    module = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2))
    model = FSDP(module, use_orig_params=False, device_id=ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    try:
        ref.full_osd(module, optimizer)
    except ref.FlatParameterError as exc:
        return str(exc)
    raise AssertionError("the reference gathered FSDP1 flat parameters")



def threads_after_builds(ctx, scenario: Scenario, builds: int) -> list[int]:
    """This rank process's thread count (native threads too) after each of
    `builds` builds of `scenario`'s workload in the same warm world."""
    import os

    counts = []
    for _ in range(builds):
        build_workload(scenario, rank=ctx.rank, device=ctx.device)
        counts.append(len(os.listdir("/proc/self/task")))
    return counts
