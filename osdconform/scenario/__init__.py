"""Scenarios: the shrinkable description of one example, and how ranks build it.

`Scenario` and its parts are plain frozen dataclasses (picklable, printable,
``repr`` rebuilds them); `build_workload` turns one into fresh objects on a rank;
`train` runs training steps on the rank's data.
"""

from ._build import Workload, build_workload, global_batch, local_batch, train
from ._plans import accepts as plan_accepts
from ._spec import (
    OPTIMIZER_NAMES,
    PLAN_KINDS,
    GroupSpec,
    ModelSpec,
    OptimizerSpec,
    PlanSpec,
    Scenario,
)

__all__ = [
    "OPTIMIZER_NAMES",
    "PLAN_KINDS",
    "GroupSpec",
    "ModelSpec",
    "OptimizerSpec",
    "PlanSpec",
    "Scenario",
    "Workload",
    "build_workload",
    "global_batch",
    "local_batch",
    "plan_accepts",
    "train",
]
