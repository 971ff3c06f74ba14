"""Hypothesis strategies that draw scenarios (see `osdconform.scenario`).

``scenarios(world_sizes=..., plan_kinds=...)`` draws whole scenarios; the
pieces (`mlp_models`, `optimizers`, `param_groups`, `plans`, ...) are public
so suites and third parties can compose their own.
"""

from ._scenario import (
    dims,
    hparams,
    mlp_models,
    optimizer_names,
    optimizers,
    param_groups,
    plans,
    scenarios,
)

__all__ = [
    "dims",
    "hparams",
    "mlp_models",
    "optimizer_names",
    "optimizers",
    "param_groups",
    "plans",
    "scenarios",
]
