"""Strategies for the plan dimension (see `osdconform.scenario._plans`).

Same blueprint pattern as `_optimizers`: choices are drawn before the model at
the largest size (one "own fully_shard?" flag per possible unit) and cut to it
by `fit_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from hypothesis import strategies as st

from ..scenario import PLAN_KINDS, ModelSpec, PlanSpec
from ._models import MAX_UNITS


def _plan(kind: str, model: ModelSpec, own_shard: Sequence[bool]) -> PlanSpec:
    if kind == "fsdp2":
        return PlanSpec(kind, shard=tuple(f for f, own in zip(model.layer_fqns(), own_shard) if own))
    return PlanSpec(kind)


@st.composite
def plans(draw, model: ModelSpec, kinds: Sequence[str] = PLAN_KINDS) -> PlanSpec:
    """A plan for `model`; for fsdp2, which layers get their own ``fully_shard``."""
    kind = draw(st.sampled_from(list(kinds)))
    own = draw(st.tuples(*[st.booleans()] * model.num_layers))
    return _plan(kind, model, own)


@dataclass(frozen=True)
class PlanBlueprint:
    """Plan choices drawn before the model, cut to it by `fit_plan`."""

    kind: str
    own_shard: tuple[bool, ...]


@st.composite
def plan_blueprints(draw, kind: str) -> PlanBlueprint:
    return PlanBlueprint(kind, draw(st.tuples(*[st.booleans()] * MAX_UNITS)))


def fit_plan(blueprint: PlanBlueprint, model: ModelSpec, world_size: int) -> PlanSpec:
    return _plan(blueprint.kind, model, blueprint.own_shard)
