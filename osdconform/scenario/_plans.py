"""Parallelism plans: what each one accepts and how it is applied.

A plan turns the user's module into the module that is trained (possibly a
wrapper).  `accepts` says why a (plan, scenario) combination is invalid, so
strategies draw only valid combinations and the reason stays written down.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ._spec import PlanSpec


def accepts(plan: PlanSpec, world_size: int) -> str | None:
    """Return why `plan` cannot run at `world_size`, or None if it can.

    All current plans run at every world size >= 1: DDP and FSDP2 both accept a
    single rank, and FSDP2 shards dims smaller than or not divisible by the
    world (uneven and empty local shards), which is exactly what we want to test.
    """
    if world_size < 1:
        return "a world needs at least one rank"
    return None


def apply_plan(
    plan: PlanSpec, module: nn.Module, device: torch.device, world_size: int
) -> nn.Module:
    """Apply `plan` to `module` in place where possible; return what to train."""
    reason = accepts(plan, world_size)
    if reason:
        raise ValueError(f"plan {plan.kind!r} at world size {world_size}: {reason}")
    return _APPLY[plan.kind](plan, module, device, world_size)


def _none(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    return module


def _ddp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def _fsdp2(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world_size,))
    for name in plan.shard:
        fully_shard(module.get_submodule(name), mesh=mesh)
    fully_shard(module, mesh=mesh)
    return module


_APPLY: dict[str, Callable[..., nn.Module]] = {
    "none": _none,
    "ddp": _ddp,
    "fsdp2": _fsdp2,
}
