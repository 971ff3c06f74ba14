"""Scenarios: the shrinkable description of one example, and how ranks build it.

One module per dimension: `_models` (the model, a package of its own),
`_optimizers` (optimizers and param groups; `_catalogue`: what each torch.optim optimizer can do), `_schedulers`, and the plan
(parallelism) in three: `_plans` (the spec), `_refusals` (what cannot run and
why) and `_apply` (building a plan on a rank); `_spec` composes them into
`Scenario`; `_build` turns one into fresh objects on a rank and trains them.
"""

from ._apply import apply_plan
from ._build import (
    ROWS_PER_RANK,
    Workload,
    apply_planned,
    build_schedulers,
    build_workload,
    global_batch,
    local_batch,
    rebuild_optimizers,
    step_loss,
    train,
)
from ._catalogue import OPTIMIZER_NAMES, installed_optimizers, unknown_optimizers
from ._models import (
    AnyModelSpec,
    BatchNormSpec,
    Conv1dSpec,
    Conv2dSpec,
    EmbeddingSpec,
    LayerNormSpec,
    LinearSpec,
    MLPSpec,
    ModelSpec,
    ModuleDictSpec,
    ModuleListSpec,
    ParamSpec,
    SequentialSpec,
    TiedLinearSpec,
    TreeSpec,
    UnusedSpec,
    build_model,
)
from ._optimizers import GroupSpec, OptimizerSpec, TensorValue, build_optimizer
from ._plans import PLAN_KINDS, PlanSpec
from ._refusals import accepts as plan_accepts
from ._releases import installed_release, release_refusals
from ._schedulers import SCHEDULER_KINDS, SchedulerSpec, build_scheduler
from ._spec import Scenario
from ._wrappers import WRAPPERS, user_submodule

__all__ = [
    "AnyModelSpec",
    "BatchNormSpec",
    "Conv1dSpec",
    "Conv2dSpec",
    "EmbeddingSpec",
    "LayerNormSpec",
    "LinearSpec",
    "ModuleDictSpec",
    "ModuleListSpec",
    "ParamSpec",
    "SequentialSpec",
    "TiedLinearSpec",
    "TreeSpec",
    "UnusedSpec",
    "OPTIMIZER_NAMES",
    "PLAN_KINDS",
    "SCHEDULER_KINDS",
    "ROWS_PER_RANK",
    "GroupSpec",
    "MLPSpec",
    "ModelSpec",
    "OptimizerSpec",
    "PlanSpec",
    "Scenario",
    "SchedulerSpec",
    "TensorValue",
    "Workload",
    "apply_plan",
    "apply_planned",
    "user_submodule",
    "WRAPPERS",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "build_schedulers",
    "build_workload",
    "rebuild_optimizers",
    "global_batch",
    "installed_optimizers",
    "local_batch",
    "installed_release",
    "plan_accepts",
    "release_refusals",
    "step_loss",
    "train",
    "unknown_optimizers",
]
