"""Rank tasks for tests/cover/test_xfail_predicates.py: what torch really does.

Each builds and trains a scenario under its plan and asks torch the question
a named condition of `osdconform.expected_failures._conditions` answers from the specs.
"""

from __future__ import annotations

from osdconform.reference._fqn import user_fqn
from osdconform.scenario import Scenario, build_workload, train


def strided_pieces_torch_refuses(ctx, scenario: Scenario) -> list[str]:
    """Parameters whose full tensor ``distribute_tensor`` cannot lay out as
    the parameter is laid out (the call a full torch-dsd set makes)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    workload = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    refused = []
    for name, param in workload.module.named_parameters():
        fqn = user_fqn(name)  # the model may be wrapped
        if not isinstance(param, DTensor):
            continue
        full = param.full_tensor()
        try:
            distribute_tensor(full.detach(), param.device_mesh, param.placements)
        except AssertionError:
            refused.append(fqn)
    return refused


def dsd_get_error(ctx, scenario: Scenario) -> str | None:
    """Train, then torch-dsd's full get; the error it raises, if any."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    workload = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    train(workload, scenario.steps)
    try:
        get_optimizer_state_dict(workload.model, workload.optimizers, options=StateDictOptions(full_state_dict=True))
    except Exception as exc:  # noqa: BLE001 - the test compares the message
        return f"{type(exc).__name__}: {exc}"
    return None


def dsd_set_error(ctx, scenario: Scenario) -> tuple[str | None, str | None]:
    """Train, get (torch-dsd, sharded form), then set into fresh objects: the
    errors the get and the set raise, if any (no set after a failed get)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    workload = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    train(workload, scenario.steps)
    try:
        osd = get_optimizer_state_dict(workload.model, workload.optimizers)
    except Exception as exc:  # noqa: BLE001 - the test compares the message
        return f"{type(exc).__name__}: {exc}", None
    fresh = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    try:
        set_optimizer_state_dict(fresh.model, fresh.optimizers, osd)
    except Exception as exc:  # noqa: BLE001
        return None, f"{type(exc).__name__}: {exc}"
    return None, None


def dcp_local_plan(osd: dict, *, coordinator: bool):
    """DCP's ``DefaultSavePlanner`` local plan of the torch-dcp backend's save of `osd`."""
    from torch.distributed.checkpoint import DefaultSavePlanner

    from osdconform.backends.torch_dcp import KEY

    planner = DefaultSavePlanner()
    planner.set_up_planner({KEY: osd}, is_coordinator=coordinator)
    return planner.create_local_plan()


def dcp_kept(plans: list) -> dict:
    """For each write item of the ranks' `plans` ((key, dims of a tensor's
    offset or None), as `_conditions_pipeline.kept_by` names them), the rank
    whose plan keeps it after DCP's ``dedup_save_plans``."""
    from torch.distributed.checkpoint._dedup_save_plans import dedup_save_plans

    kept = {}
    for rank, plan in enumerate(dedup_save_plans(plans)):
        for item in plan.items:
            offset = item.index.offset
            kept[(item.index.fqn, None if offset is None else len(offset))] = rank
    return kept


def dcp_kept_stages(ctx, scenario: Scenario) -> dict | str:
    """Train, take torch-dsd's get as torch-dcp's save does, and plan the save
    with DCP's own planner: `dcp_kept` of every rank's plan, or the get's error."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    workload = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    train(workload, scenario.steps)
    try:
        osd = get_optimizer_state_dict(workload.model, workload.optimizers)
    except Exception as exc:  # noqa: BLE001 - the test reports it
        return f"{type(exc).__name__}: {exc}"
    plans = [None] * ctx.world_size
    dist.all_gather_object(plans, dcp_local_plan(osd, coordinator=ctx.rank == 0))
    return dcp_kept(plans)
