"""The scenario: a small, picklable, printable description of one example.

Every rank receives the same `Scenario` and builds the same model, optimizers,
data and parallelism plan from it (see `_build.py`).  Each dimension lives in
its own module (`_models`, `_optimizers`, `_plans`); this one composes them.
The classes are frozen dataclasses of plain values so that:

* they pickle cheaply across the process boundary of the world pool;
* their ``repr`` is valid Python that rebuilds them (reproducer scripts);
* Hypothesis can shrink the strategies that produce them field by field.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from ._models import AnyModelSpec
from ._optimizers import OptimizerSpec
from ._plans import PlanSpec


@dataclass(frozen=True)
class Scenario:
    """Everything needed to rebuild one example on every rank.

    ``optimizers`` are over disjoint sets of parameters; most scenarios have
    one (`optimizer` is then a shortcut for it).
    """

    seed: int
    world_size: int
    model: AnyModelSpec
    optimizers: tuple[OptimizerSpec, ...]
    plan: PlanSpec = PlanSpec()
    steps: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {self.world_size}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if not self.optimizers:
            raise ValueError("a scenario needs at least one optimizer")
        known = set(self.model.param_fqns())
        seen: set[str] = set()
        for opt in self.optimizers:
            fqns = set(opt.param_fqns())
            unknown = fqns - known
            if unknown:
                raise ValueError(f"param groups name unknown parameters {sorted(unknown)}")
            shared = fqns & seen
            if shared:
                raise ValueError(f"parameters {sorted(shared)} belong to more than one optimizer")
            seen |= fqns
        self.plan.validate(self.model)
        if getattr(self.model, "grad_dtype", None) is not None:
            for opt in self.optimizers:
                reason = opt.unsupported_grad_dtype()
                if reason:
                    raise ValueError(f"the model's gradients are {self.model.grad_dtype}: {reason}")

    @property
    def optimizer(self) -> OptimizerSpec:
        """The scenario's only optimizer (an error if it has several)."""
        if len(self.optimizers) != 1:
            raise ValueError(f"this scenario has {len(self.optimizers)} optimizers; use .optimizers")
        return self.optimizers[0]

    @property
    def optimizer_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.optimizers)

    @functools.cached_property
    def features(self) -> frozenset[str]:
        """Feature tags (``plan:fsdp2``, ``optimizer:adam``, ``dtype:bfloat16``, ...).

        Used by the coverage report, the JSON report and expected-failure
        predicates (``"optimizer:adam" in s.features``).  Computed once per
        scenario (it is frozen): every entry's predicate asks for it.
        """
        tags = set(self.model.features()) | set(self.plan.features())
        tags |= self.plan.model_features(self.model, self.world_size)
        for opt in self.optimizers:
            tags |= opt.features(self.model.param_fqns())
        if len(self.optimizers) > 1:
            tags.add("several optimizers")
            if self.plan.kind == "fsdp1" and self._fsdp1_unit_split():
                tags.add("fsdp1:unit split across optimizers")
        tags.add(f"world:{self.world_size}")
        tags |= self.model.world_features(self.world_size)
        tags.add("no state yet" if self.steps == 0 else "trained")
        return frozenset(tags)

    def _fsdp1_unit_split(self) -> bool:
        """Whether the parameters of one FSDP1 unit (a module in ``plan.shard``, or
        the root with everything else) are spread over several optimizers."""
        units = sorted(self.plan.shard, key=len, reverse=True)  # innermost first

        def unit(fqn: str) -> str:
            return next((u for u in units if fqn.startswith(u + ".")), "")

        owners: dict[str, set[int]] = {}
        for i, opt in enumerate(self.optimizers):
            for group in opt.groups:
                for fqn in group.params:
                    owners.setdefault(unit(fqn), set()).add(i)
        return any(len(o) > 1 for o in owners.values())

    def replace(self, **changes: Any) -> "Scenario":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """The scenario in plain words, for failure output."""
        lines = [
            f"world size {self.world_size}, plan {self.plan.describe()}",
            f"model: {self.model.describe()}",
        ]
        for i, opt in enumerate(self.optimizers):
            prefix = "optimizer" if len(self.optimizers) == 1 else f"optimizer {i}"
            lines.append(f"{prefix}: {opt.describe()}")
        lines.append(f"{self.steps} training step(s), seed {self.seed}")
        return "\n".join(lines)
