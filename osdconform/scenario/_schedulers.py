"""LR schedulers of a scenario: `SchedulerSpec` and how it is built.

A scheduler belongs to one optimizer (``OptimizerSpec.scheduler``) and is
stepped after it in every training step.  Schedulers write into the
optimizer's param_groups (``lr``, and keys of their own such as
``initial_lr``, ``max_lr``, ``min_lr``), which is why they matter for
optimizer-state checkpointing even though their own ``state_dict`` is not part
of the OSD.

Only kinds whose ``state_dict`` is plain data are in the space: ``LambdaLR`` /
``MultiplicativeLR`` hold functions (not saved), ``ReduceLROnPlateau`` needs a
metric, ``SequentialLR`` / ``ChainedScheduler`` wrap other schedulers.
``OneCycleLR`` and ``CyclicLR`` run with ``cycle_momentum=False``: cycling
momentum rewrites ``momentum`` / ``betas`` and would turn a plain SGD group
(no state) into one with state, which is a different scenario than drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

#: Scheduler kinds in the space (``torch.optim.lr_scheduler`` class names)
#: and the keyword arguments every instance gets on top of the drawn ones.
SCHEDULER_KINDS: dict[str, dict[str, Any]] = {
    "StepLR": {"step_size": 1},
    "MultiStepLR": {"milestones": (1, 2)},
    "ExponentialLR": {"gamma": 0.9},
    "CosineAnnealingLR": {"T_max": 4},
    "LinearLR": {},
    "ConstantLR": {},
    "PolynomialLR": {},
    # total_steps must exceed the number of scheduler steps of any scenario
    # (training steps plus resumes), or OneCycleLR raises.
    "OneCycleLR": {"max_lr": 0.1, "total_steps": 100, "cycle_momentum": False},
    "CyclicLR": {"base_lr": 1e-3, "max_lr": 0.1, "step_size_up": 2, "cycle_momentum": False},
}


@dataclass(frozen=True)
class SchedulerSpec:
    """An LR scheduler: its kind (class name) and drawn keyword arguments."""

    kind: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULER_KINDS:
            raise ValueError(f"unknown scheduler {self.kind!r}; known: {tuple(SCHEDULER_KINDS)}")

    def arguments(self) -> dict[str, Any]:
        return {**SCHEDULER_KINDS[self.kind], **dict(self.kwargs)}

    def features(self) -> frozenset[str]:
        return frozenset({f"scheduler:{self.kind}"})

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs)
        return f"{self.kind}({args})"


def build_scheduler(spec: SchedulerSpec, optimizer: torch.optim.Optimizer):
    cls = getattr(torch.optim.lr_scheduler, spec.kind)
    args = spec.arguments()
    if "milestones" in args:
        args["milestones"] = list(args["milestones"])
    return cls(optimizer, **args)
