"""The scenario: a small, picklable, printable description of one example.

Every rank receives the same `Scenario` and builds the same model, optimizer,
data and parallelism plan from it (see `_build.py`).  The classes are frozen
dataclasses of plain values so that:

* they pickle cheaply across the process boundary of the world pool;
* their ``repr`` is valid Python that rebuilds them (reproducer scripts);
* Hypothesis can shrink the strategies that produce them field by field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Plans the scenario model knows.  Each is applied in `_plans.py`, which also
#: says which world sizes and models a plan accepts.
PLAN_KINDS = ("none", "ddp", "fsdp2")

#: Optimizers the scenario model knows, by the short name used in specs.
OPTIMIZER_NAMES = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class ModelSpec:
    """An MLP: ``Linear(dims[i], dims[i+1])`` layers joined by ``tanh``.

    Parameter FQNs are ``layers.<i>.weight`` and ``layers.<i>.bias``.
    """

    dims: tuple[int, ...]
    bias: tuple[bool, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if len(self.dims) < 2:
            raise ValueError(f"an MLP needs at least two widths, got dims={self.dims}")
        if len(self.bias) != len(self.dims) - 1:
            raise ValueError(
                f"bias has {len(self.bias)} flags for {len(self.dims) - 1} layers"
            )
        if min(self.dims) < 1:
            raise ValueError(f"widths must be >= 1, got dims={self.dims}")

    @property
    def num_layers(self) -> int:
        return len(self.dims) - 1

    def param_fqns(self) -> tuple[str, ...]:
        """Parameter FQNs in model (registration) order."""
        fqns: list[str] = []
        for i, has_bias in enumerate(self.bias):
            fqns.append(f"layers.{i}.weight")
            if has_bias:
                fqns.append(f"layers.{i}.bias")
        return tuple(fqns)

    def layer_fqns(self) -> tuple[str, ...]:
        return tuple(f"layers.{i}" for i in range(self.num_layers))


@dataclass(frozen=True)
class GroupSpec:
    """One param group: its parameters (by FQN, in group order) and hyperparameters.

    ``hparams`` is a tuple of ``(name, value)`` pairs rather than a dict so the
    spec stays hashable and its repr stable.
    """

    params: tuple[str, ...]
    hparams: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return dict(self.hparams)


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    groups: tuple[GroupSpec, ...]

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZER_NAMES:
            raise ValueError(f"unknown optimizer {self.name!r}; known: {OPTIMIZER_NAMES}")
        seen: set[str] = set()
        for group in self.groups:
            dup = seen.intersection(group.params)
            if dup:
                raise ValueError(f"parameters {sorted(dup)} are in more than one group")
            seen.update(group.params)


@dataclass(frozen=True)
class PlanSpec:
    """How the model is parallelised.

    ``kind`` is one of `PLAN_KINDS`.  For ``fsdp2``, ``shard`` lists the layers
    (``layers.<i>``) that get their own ``fully_shard`` call before the root's.
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


@dataclass(frozen=True)
class Scenario:
    """Everything needed to rebuild one example on every rank."""

    seed: int
    world_size: int
    model: ModelSpec
    optimizer: OptimizerSpec
    plan: PlanSpec = PlanSpec()
    steps: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {self.world_size}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        known = set(self.model.param_fqns())
        grouped = {fqn for g in self.optimizer.groups for fqn in g.params}
        unknown = grouped - known
        if unknown:
            raise ValueError(f"param groups name unknown parameters {sorted(unknown)}")
        unknown_layers = set(self.plan.shard) - set(self.model.layer_fqns())
        if unknown_layers:
            raise ValueError(f"plan shards unknown layers {sorted(unknown_layers)}")

    def replace(self, **changes: Any) -> "Scenario":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """The scenario in plain words, for failure output."""
        m = self.model
        widths = " -> ".join(str(d) for d in m.dims)
        biases = "".join("b" if b else "-" for b in m.bias)
        lines = [
            f"world size {self.world_size}, plan {_describe_plan(self.plan)}",
            f"model: MLP {widths} ({m.dtype}, bias per layer: {biases})",
            f"optimizer: {self.optimizer.name} with {len(self.optimizer.groups)} param group(s)",
        ]
        for i, g in enumerate(self.optimizer.groups):
            hp = ", ".join(f"{k}={v!r}" for k, v in g.hparams) or "defaults"
            lines.append(f"  group {i}: [{', '.join(g.params)}] {hp}")
        lines.append(f"{self.steps} training step(s), seed {self.seed}")
        return "\n".join(lines)


def _describe_plan(plan: PlanSpec) -> str:
    if plan.kind == "fsdp2":
        own = ", ".join(plan.shard) if plan.shard else "no layer"
        return f"fsdp2 (fully_shard on {own}, then the root)"
    return plan.kind
