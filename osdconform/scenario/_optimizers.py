"""The optimizer dimension of a scenario: optimizers, their param groups, and how they are built.

A scenario holds one or more `OptimizerSpec` over disjoint parts of the model;
each has param groups (`GroupSpec`) naming parameters by FQN, constructor
flags (``foreach``, ``fused``, ``maximize``, ``capturable``) and optionally an
LR scheduler.  What each torch.optim optimizer can do (flags, parameters,
plans) is the catalogue's (`_catalogue`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from ._catalogue import (
    FLAGS,
    MIXED_TENSOR_PLANS,
    MIXED_TENSOR_REASON,
    PIPELINE_CLOSURE_REASON,
    WHOLE_PARAM_PLANS,
    OptimizerKind,
    constructor_defaults,
    flags_problem,
    kind_of,
    optimizer_class,
    tensor_lr_problem,
)
from ._schedulers import SchedulerSpec


@dataclass(frozen=True)
class TensorValue:
    """A hyperparameter handed to torch as a 0-d float32 tensor (``lr=TensorValue(0.01)``)."""

    value: float

    def build(self) -> torch.Tensor:
        return torch.tensor(self.value, dtype=torch.float32)


@dataclass(frozen=True)
class GroupSpec:
    """One param group: its parameters (by FQN, in group order) and hyperparameters.

    ``hparams`` is a tuple of ``(name, value)`` pairs rather than a dict so the
    spec stays hashable and its repr stable.  Names the optimizer's
    constructor does not take are custom keys (``name``, ``initial_lr``, ...),
    which torch keeps in the group as they are.
    """

    params: tuple[str, ...]
    hparams: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return {k: v.build() if isinstance(v, TensorValue) else v for k, v in self.hparams}

    def describe(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams) or "defaults"
        return f"[{', '.join(self.params)}] {hp}"


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer over some of the model's parameters.

    ``flags`` are constructor flags set True (`FLAGS`); ``scheduler`` an LR
    scheduler stepped after it.
    """

    name: str
    groups: tuple[GroupSpec, ...]
    flags: tuple[str, ...] = ()
    scheduler: SchedulerSpec | None = field(default=None)

    def __post_init__(self) -> None:
        kind = kind_of(self.name)
        # No device here: what some device accepts (see `flags_problem`).
        problem = flags_problem(self.name, self.flags, device=None)
        if problem:
            raise ValueError(f"{self.name} with flags {self.flags}: {problem}")
        if not self.groups:
            raise ValueError(f"{self.name} needs at least one param group")
        if kind.one_group and len(self.groups) != 1:
            raise ValueError(f"{kind.cls_name} takes exactly one param group")
        seen: set[str] = set()
        for group in self.groups:
            dup = seen.intersection(group.params)
            if dup:
                raise ValueError(f"parameters {sorted(dup)} are in more than one group")
            seen.update(group.params)
            if isinstance(dict(group.hparams).get("lr"), TensorValue):
                problem = tensor_lr_problem(self.name, self.flags)
                if problem:
                    raise ValueError(f"{self.name} with flags {self.flags}: {problem}")

    @property
    def kind(self) -> OptimizerKind:
        return kind_of(self.name)

    @property
    def needs_closure(self) -> bool:
        """Whether ``step`` must be given a closure that re-evaluates the loss (LBFGS)."""
        return self.kind.needs_closure

    def param_fqns(self) -> tuple[str, ...]:
        return tuple(fqn for g in self.groups for fqn in g.params)

    def effective_hparams(self, group: GroupSpec) -> dict[str, Any]:
        """The group's hyperparameters as torch will hold them (defaults, flags, drawn values)."""
        return {**constructor_defaults(self.name), **{f: True for f in self.flags}, **dict(group.hparams)}

    def group_keeps_state(self, group: GroupSpec) -> bool:
        """Whether stepping this group creates optimizer state (plain SGD does not)."""
        if self.name == "sgd":
            momentum = self.effective_hparams(group)["momentum"]
            return bool(momentum.value if isinstance(momentum, TensorValue) else momentum)
        return True

    def optional_state(self, group: GroupSpec) -> frozenset[str]:
        """The state entries torch.optim keeps for this group's parameters only because of
        its hyperparameters: Adam/AdamW ``amsgrad`` (``max_exp_avg_sq``), RMSprop
        ``centered`` (``grad_avg``) and ``momentum`` (``momentum_buffer``), SGD
        ``momentum``.  Groups of one optimizer can so keep different keys
        (expected-failure predicates ask)."""
        h = self.effective_hparams(group)

        def on(key: str) -> bool:
            value = h.get(key)
            return bool(value.value if isinstance(value, TensorValue) else value)

        keys = {
            "max_exp_avg_sq": self.name in ("adam", "adamw") and on("amsgrad"),
            "grad_avg": self.name == "rmsprop" and on("centered"),
            "momentum_buffer": self.name in ("rmsprop", "sgd") and on("momentum"),
        }
        return frozenset(k for k, v in keys.items() if v)

    def unsupported_plan(self, plan_kind: str) -> str | None:
        """Why this optimizer cannot run under plans of `plan_kind`, or None."""
        if plan_kind == "pp" and self.needs_closure:
            return f"{self.kind.cls_name} under pp: {PIPELINE_CLOSURE_REASON}"
        if plan_kind in WHOLE_PARAM_PLANS:
            return None
        kind = self.kind
        if plan_kind in MIXED_TENSOR_PLANS and {"foreach", "fused"} & set(self.flags):
            return f"{'/'.join(sorted({'foreach', 'fused'} & set(self.flags)))} under {plan_kind}: {MIXED_TENSOR_REASON}"
        if kind.sharded:
            return f"{kind.cls_name} under {plan_kind}: {kind.sharded}"
        if "fused" in self.flags and kind.fused_sharded:
            return f"fused {kind.cls_name} under {plan_kind}: {kind.fused_sharded}"
        return None

    def unsupported_grad_dtype(self) -> str | None:
        """Why this optimizer cannot step gradients of another dtype than their
        parameters' (`TreeSpec.grad_dtype`), or None (`_catalogue.GRAD_DTYPE_OPTIMIZERS`)."""
        from ._catalogue import GRAD_DTYPE_OPTIMIZERS, GRAD_DTYPE_REFUSED_FLAGS

        if self.name not in GRAD_DTYPE_OPTIMIZERS:
            return f"{self.kind.cls_name} cannot step gradients of another dtype than its parameters'"
        refused = sorted(GRAD_DTYPE_REFUSED_FLAGS & set(self.flags))
        if refused:
            return f"{'/'.join(refused)} {self.kind.cls_name} cannot step gradients of another dtype than its parameters'"
        return None

    def features(self, model_order: Sequence[str] | None = None) -> frozenset[str]:
        """Feature tags for coverage reports and expected-failure predicates.

        With ``model_order`` (the model's parameter FQNs), also whether a
        group lists its parameters in another order.
        """
        tags = {f"optimizer:{self.name}", *self.flags}
        if not self.kind.known:
            tags.add("unknown optimizer")
        if len(self.groups) > 1:
            tags.add("several groups")
        if self.scheduler is not None:
            tags |= self.scheduler.features()
        ctor = constructor_defaults(self.name)
        position = {fqn: i for i, fqn in enumerate(model_order or ())}
        stateless = [not self.group_keeps_state(g) for g in self.groups if g.params]
        if any(stateless):
            tags.add("no-state group")
            if all(stateless):
                tags.add("no-state optimizer")
        if not all(stateless):
            tags.add("stateful group")
        empty = [i for i, g in enumerate(self.groups) if not g.params]
        if len(empty) > 1:
            tags.add("several empty groups")
        if empty and empty[0] < len(self.groups) - 1:
            tags.add("empty group before others")
        for group in self.groups:
            if not group.params:
                tags.add("empty group")
            drawn = dict(group.hparams)
            if isinstance(drawn.get("lr"), TensorValue):
                tags.add("tensor lr")
            if set(drawn) - set(ctor):
                tags.add("custom keys")
            for key, value in self.effective_hparams(group).items():
                if value is True and key not in FLAGS:
                    tags.add(key.replace("_", " "))  # amsgrad, nesterov, centered, ...
                if isinstance(value, tuple):
                    tags.add("tuple hyperparameter")
                if key == "line_search_fn" and value is not None:
                    tags.add(f"line search:{value}")
            order = [position[f] for f in group.params if f in position]
            if order != sorted(order):
                tags.add("params out of model order")
        return frozenset(tags)

    def describe(self) -> str:
        flags = f" [{', '.join(self.flags)}]" if self.flags else ""
        sched = f", scheduler {self.scheduler.describe()}" if self.scheduler else ""
        lines = [f"{self.name}{flags} with {len(self.groups)} param group(s){sched}"]
        lines += [f"  group {i}: {g.describe()}" for i, g in enumerate(self.groups)]
        return "\n".join(lines)


def build_optimizer(spec: OptimizerSpec, params: Mapping[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer of `spec` over ``params`` (FQN -> parameter of the user's module)."""
    groups = [{"params": [params[fqn] for fqn in g.params], **g.kwargs()} for g in spec.groups]
    return optimizer_class(spec.name)(groups, **{flag: True for flag in spec.flags})
