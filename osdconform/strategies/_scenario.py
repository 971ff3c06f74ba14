"""Hypothesis strategies for scenarios, composed from small named pieces.

Each piece shrinks toward its simplest value: fewer and narrower layers, one
param group with default hyperparameters, plan ``none``, world size 1 (the
first of the allowed sizes), no training step.  Dims are drawn small (1..9) so
that sizes smaller than and not divisible by the world size come up often.
"""

from __future__ import annotations

from typing import Sequence

from hypothesis import strategies as st

from ..scenario import (
    PLAN_KINDS,
    GroupSpec,
    ModelSpec,
    OptimizerSpec,
    PlanSpec,
    Scenario,
    plan_accepts,
)

MAX_DIM = 9
MAX_LAYERS = 3
MAX_GROUPS = 3
MAX_STEPS = 3


def dims(max_dim: int = MAX_DIM) -> st.SearchStrategy[int]:
    return st.integers(1, max_dim)


@st.composite
def mlp_models(draw, max_layers: int = MAX_LAYERS, max_dim: int = MAX_DIM) -> ModelSpec:
    """An MLP; each layer is drawn as one (width, bias) piece so it shrinks away whole."""
    d_in = draw(dims(max_dim))
    layers = draw(st.lists(st.tuples(dims(max_dim), st.booleans()), min_size=1, max_size=max_layers))
    return ModelSpec(
        dims=(d_in, *(width for width, _ in layers)), bias=tuple(b for _, b in layers)
    )


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


@st.composite
def scenarios(
    draw,
    *,
    world_sizes: Sequence[int] = (1, 2, 3, 4),
    plan_kinds: Sequence[str] = PLAN_KINDS,
    max_steps: int = MAX_STEPS,
    min_steps: int = 0,
) -> Scenario:
    """Whole scenarios.  World sizes shrink toward the first given (keep it the smallest).

    The model is drawn *last*, and what depends on its size (group numbers per
    parameter, fsdp2's per-layer choice) is drawn first at the largest size
    and cut to fit.  So when the shrinker removes a layer, no later draw moves
    and the rest of the scenario stays as it was: failures shrink to one layer.
    """
    kind = draw(st.sampled_from(list(plan_kinds)))
    sizes = [w for w in world_sizes if plan_accepts(PlanSpec(kind), w) is None]
    if not sizes:
        raise ValueError(f"plan {kind!r} accepts none of the world sizes {list(world_sizes)}")
    world_size = draw(st.sampled_from(sorted(sizes)))
    name = draw(optimizer_names())
    assignment = draw(_group_numbers(2 * MAX_LAYERS, MAX_GROUPS))
    group_hparams = draw(st.tuples(*[hparams(name)] * MAX_GROUPS))
    own_shard = draw(st.tuples(*[st.booleans()] * MAX_LAYERS))
    steps = draw(st.integers(min_steps, max_steps))
    seed = draw(st.integers(0, 2**16))
    model = draw(mlp_models(max_layers=MAX_LAYERS))
    return Scenario(
        seed=seed,
        world_size=world_size,
        model=model,
        optimizer=OptimizerSpec(name, _partition(model.param_fqns(), assignment, group_hparams)),
        plan=_plan(kind, model, own_shard),
        steps=steps,
    )
