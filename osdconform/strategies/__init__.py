"""Hypothesis strategies that draw scenarios (see `osdconform.scenario`).

One module per dimension (`_models`, `_optimizers`, `_plans`), `_scenario`
composing them into the full space, `_core` the core space, and `_space`
the spaces as objects (`CORE`, `FULL`: what a run draws and what it can
draw).  ``scenarios(world_sizes=..., plan_kinds=..., space=CORE)`` draws
whole scenarios; the pieces are public so suites and third parties can
compose their own.
"""

from ._core import CORE_PLANS, FALLBACK_PLANS, core_plan_kinds, core_scenarios
from ._models import dims, mlp_models, models, tree_models
from ._optimizers import hparams, optimizer_blueprints, optimizer_names, optimizers, param_groups
from ._pairs import reshard_pairs
from ._plans import plans
from ._scenario import full_scenarios
from ._schedulers import schedulers
from ._space import CORE, FULL, SPACES, Drawable, Space, scenarios, space

__all__ = [
    "CORE_PLANS",
    "FALLBACK_PLANS",
    "core_plan_kinds",
    "CORE",
    "Drawable",
    "FULL",
    "SPACES",
    "Space",
    "core_scenarios",
    "full_scenarios",
    "space",
    "dims",
    "hparams",
    "mlp_models",
    "models",
    "optimizer_blueprints",
    "optimizer_names",
    "optimizers",
    "param_groups",
    "plans",
    "reshard_pairs",
    "scenarios",
    "schedulers",
    "tree_models",
]
