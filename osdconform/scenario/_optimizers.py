"""The optimizer dimension of a scenario: optimizers, their param groups, and how they are built.

A scenario holds one or more `OptimizerSpec` over disjoint parts of the model;
each has param groups (`GroupSpec`) naming parameters by FQN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

#: Optimizers the scenario model knows, by the short name used in specs,
#: mapped to their ``torch.optim`` class name.
OPTIMIZER_CLASSES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}
OPTIMIZER_NAMES = tuple(OPTIMIZER_CLASSES)


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

    def describe(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams) or "defaults"
        return f"[{', '.join(self.params)}] {hp}"


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    groups: tuple[GroupSpec, ...]

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZER_CLASSES:
            raise ValueError(f"unknown optimizer {self.name!r}; known: {OPTIMIZER_NAMES}")
        seen: set[str] = set()
        for group in self.groups:
            dup = seen.intersection(group.params)
            if dup:
                raise ValueError(f"parameters {sorted(dup)} are in more than one group")
            seen.update(group.params)

    def param_fqns(self) -> tuple[str, ...]:
        return tuple(fqn for g in self.groups for fqn in g.params)

    def features(self) -> frozenset[str]:
        """Feature tags for coverage reports and expected-failure predicates."""
        tags = {f"optimizer:{self.name}"}
        if len(self.groups) > 1:
            tags.add("several groups")
        return frozenset(tags)

    def describe(self) -> str:
        lines = [f"{self.name} with {len(self.groups)} param group(s)"]
        lines += [f"  group {i}: {g.describe()}" for i, g in enumerate(self.groups)]
        return "\n".join(lines)


def build_optimizer(spec: OptimizerSpec, params: Mapping[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer of `spec` over ``params`` (FQN -> parameter of the user's module)."""
    cls = getattr(torch.optim, OPTIMIZER_CLASSES[spec.name])
    groups = [{"params": [params[fqn] for fqn in g.params], **g.kwargs()} for g in spec.groups]
    return cls(groups)
