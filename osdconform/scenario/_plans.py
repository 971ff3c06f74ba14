"""The plan dimension of a scenario: `PlanSpec`, what each plan accepts, how it is applied.

A plan turns the user's module into the module that is trained (possibly a
wrapper).  `accepts` says why a (plan, scenario) combination is invalid, so
strategies draw only valid combinations and the reason stays written down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ._models import ModelSpec

#: Plans the scenario model knows.
PLAN_KINDS = ("none", "ddp", "fsdp2")


@dataclass(frozen=True)
class PlanSpec:
    """How the model is parallelised.

    ``kind`` is one of `PLAN_KINDS`.  For ``fsdp2``, ``shard`` lists the
    submodules that get their own ``fully_shard`` call before the root's.
    """

    kind: str = "none"
    shard: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in PLAN_KINDS:
            raise ValueError(f"unknown plan {self.kind!r}; known: {PLAN_KINDS}")
        if self.shard and self.kind != "fsdp2":
            raise ValueError(f"plan {self.kind!r} takes no shard list")

    @property
    def data_parallel(self) -> bool:
        """Whether each rank trains on its own slice of the global batch."""
        return self.kind in ("ddp", "fsdp2")

    def features(self) -> frozenset[str]:
        """Feature tags for coverage reports and expected-failure predicates."""
        return frozenset({f"plan:{self.kind}"})

    def describe(self) -> str:
        if self.kind == "fsdp2":
            own = ", ".join(self.shard) if self.shard else "no layer"
            return f"fsdp2 (fully_shard on {own}, then the root)"
        return self.kind

    def validate(self, model: ModelSpec) -> None:
        """Raise ValueError if the plan names parts the model does not have."""
        unknown = set(self.shard) - set(model.layer_fqns())
        if unknown:
            raise ValueError(f"plan shards unknown submodules {sorted(unknown)}")


def accepts(plan: PlanSpec, world_size: int, model: ModelSpec | None = None) -> str | None:
    """Return why `plan` cannot run at `world_size` (with `model`), or None if it can.

    Strategies call this with ``model=None`` to pick world sizes before the
    model is drawn, and with the model once it is.

    All current plans run at every world size >= 1: DDP and FSDP2 both accept a
    single rank, and FSDP2 shards dims smaller than or not divisible by the
    world (uneven and empty local shards), which is exactly what we want to test.
    """
    if world_size < 1:
        return "a world needs at least one rank"
    if model is not None and plan.kind == "fsdp2" and "0-d param" in model.features():
        return "fully_shard does not take 0-d (scalar) parameters"
    if model is not None and plan.kind == "ddp":
        frozen = {fqn for fqn, k in model.frozen_after().items() if k == 0}
        if frozen >= set(model.param_fqns()):
            return "DDP refuses a module with no parameter that requires grad"
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
    # Unused branches and parameters frozen after some steps get no gradient:
    # DDP must look for them, or it waits for their reduction forever.
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def _fsdp2(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world_size,))
    # Innermost first: fully_shard on a module whose parameters an outer
    # fully_shard already made DTensors fails (it takes them for TP shards).
    for name in reversed(plan.shard):
        fully_shard(module.get_submodule(name), mesh=mesh)
    fully_shard(module, mesh=mesh)
    return module


_APPLY: dict[str, Callable[..., nn.Module]] = {
    "none": _none,
    "ddp": _ddp,
    "fsdp2": _fsdp2,
}
