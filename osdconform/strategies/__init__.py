"""Hypothesis strategies that draw scenarios (see `osdconform.scenario`).

One module per dimension (`_models`, `_optimizers`, `_plans`) and `_scenario`
composing them.  ``scenarios(world_sizes=..., plan_kinds=...)`` draws whole
scenarios; the pieces are public so suites and third parties can compose
their own.
"""

from ._models import dims, mlp_models, models, tree_models
from ._optimizers import hparams, optimizer_blueprints, optimizer_names, optimizers, param_groups
from ._pairs import reshard_pairs
from ._schedulers import schedulers
from ._plans import plans
from ._core import CORE_PLANS, FALLBACK_PLANS, core_plan_kinds, core_scenarios
from ._scenario import SPACES, current_space, full_scenarios, scenarios, set_space

__all__ = [
    "CORE_PLANS",
    "FALLBACK_PLANS",
    "core_plan_kinds",
    "SPACES",
    "core_scenarios",
    "current_space",
    "full_scenarios",
    "set_space",
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
