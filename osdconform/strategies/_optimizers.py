"""Strategies for the optimizer dimension (see `osdconform.scenario._optimizers`).

The pattern every dimension follows so that shrinking works: a *blueprint* is
drawn before the model, at the largest size any model can need (one group
number per possible parameter, hyperparameters for every possible group), and
`fit_optimizers` cuts it to the model drawn afterwards.  So when the shrinker
removes a layer, no other draw moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from hypothesis import strategies as st

from ..scenario import GroupSpec, ModelSpec, OptimizerSpec
from ._models import MAX_PARAMS

MAX_GROUPS = 3

#: Hyperparameters per optimizer, each shrinking to torch's default.
_LR = st.sampled_from([1e-3, 1e-2, 0.1, 0.5])
_WD = st.sampled_from([0.0, 1e-2, 0.1])
_BETAS = st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)])
_HPARAMS = {
    "sgd": {
        "lr": _LR,
        "momentum": st.sampled_from([0.9, 0.5, 0.99]),  # > 0, so SGD keeps state
        "weight_decay": _WD,
        "dampening": st.sampled_from([0.0, 0.1]),
    },
    "adam": {"lr": _LR, "betas": _BETAS, "weight_decay": _WD, "eps": st.sampled_from([1e-8, 1e-6])},
    "adamw": {"lr": _LR, "betas": _BETAS, "weight_decay": st.sampled_from([1e-2, 0.0, 0.1])},
}


def optimizer_names() -> st.SearchStrategy[str]:
    return st.sampled_from(["adam", "sgd", "adamw"])


@st.composite
def hparams(draw, optimizer: str) -> tuple[tuple[str, object], ...]:
    """Per-group hyperparameters; each one is either left at the default or drawn."""
    chosen = []
    for name, values in _HPARAMS[optimizer].items():
        if draw(st.booleans()):
            chosen.append((name, draw(values)))
    # SGD needs momentum > 0 to have state; nesterov would also need dampening 0.
    if optimizer == "sgd" and "momentum" not in dict(chosen):
        chosen.append(("momentum", 0.9))
    return tuple(chosen)


def _partition(fqns: Sequence[str], assignment: Sequence[int], group_hparams) -> tuple[GroupSpec, ...]:
    """Group `fqns` by their assigned group number; keep model order; drop empty groups."""
    groups = []
    for g in sorted(set(assignment[: len(fqns)])):
        members = tuple(f for f, a in zip(fqns, assignment) if a == g)
        groups.append(GroupSpec(params=members, hparams=group_hparams[g]))
    return tuple(groups)


def _group_numbers(n: int, max_groups: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[st.integers(0, max_groups - 1)] * n)


@st.composite
def param_groups(draw, fqns: Sequence[str], optimizer: str, max_groups: int = MAX_GROUPS):
    """A partition of `fqns` into 1..max_groups non-empty groups, in model order.

    Each parameter draws its group number on its own (no group count drawn
    first), so every number shrinks to 0: one group.
    """
    assignment = draw(_group_numbers(len(fqns), max_groups))
    group_hparams = draw(st.tuples(*[hparams(optimizer)] * max_groups))
    return _partition(fqns, assignment, group_hparams)


@st.composite
def optimizers(draw, model: ModelSpec, names: st.SearchStrategy[str] | None = None) -> OptimizerSpec:
    name = draw(names if names is not None else optimizer_names())
    return OptimizerSpec(name=name, groups=draw(param_groups(model.param_fqns(), name)))


@dataclass(frozen=True)
class OptimizerBlueprint:
    """Optimizer choices drawn before the model, cut to it by `fit_optimizers`."""

    name: str
    assignment: tuple[int, ...]
    group_hparams: tuple[tuple[tuple[str, Any], ...], ...]


@st.composite
def optimizer_blueprints(draw) -> OptimizerBlueprint:
    name = draw(optimizer_names())
    assignment = draw(_group_numbers(MAX_PARAMS, MAX_GROUPS))
    group_hparams = draw(st.tuples(*[hparams(name)] * MAX_GROUPS))
    return OptimizerBlueprint(name, assignment, group_hparams)


def fit_optimizers(blueprint: OptimizerBlueprint, model: ModelSpec) -> tuple[OptimizerSpec, ...]:
    """The scenario's optimizers for `model`, as the blueprint chose them."""
    groups = _partition(model.param_fqns(), blueprint.assignment, blueprint.group_hparams)
    return (OptimizerSpec(blueprint.name, groups),)
