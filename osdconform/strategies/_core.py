"""The core space: the scenarios the ``ci`` runs draw by default (``--osd-space=core``).

MLPs of 1-3 ``Linear`` layers (widths 1-9, so dims smaller than and not
divisible by the world size, and empty local shards, come up all the time);
SGD with momentum, Adam, AdamW in 1-3 param groups with their own
hyperparameters; plans ``none``, ``ddp``, ``fsdp2``.  Every property of every
built-in backend is checked green on it, and torch's defects in it are
recorded.  The whole space (`_scenario.full_scenarios`: module trees, every
torch.optim optimizer, every plan) is drawn with ``--osd-space=full``; see
the README for what is known to fail there.
"""

from __future__ import annotations

from typing import Any, Sequence

from hypothesis import strategies as st

from ..scenario import GroupSpec, ModelSpec, OptimizerSpec, PlanSpec, Scenario, plan_accepts

CORE_PLANS = ("none", "ddp", "fsdp2")
MAX_DIM = 9
MAX_LAYERS = 3
MAX_GROUPS = 3

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


@st.composite
def core_models(draw) -> ModelSpec:
    """An MLP; each layer is drawn as one (width, bias) piece so it shrinks away whole."""
    d_in = draw(st.integers(1, MAX_DIM))
    layers = draw(st.lists(st.tuples(st.integers(1, MAX_DIM), st.booleans()), min_size=1, max_size=MAX_LAYERS))
    return ModelSpec(dims=(d_in, *(w for w, _ in layers)), bias=tuple(b for _, b in layers))


@st.composite
def _hparams(draw, optimizer: str) -> tuple[tuple[str, Any], ...]:
    chosen = [(name, draw(values)) for name, values in _HPARAMS[optimizer].items() if draw(st.booleans())]
    if optimizer == "sgd" and "momentum" not in dict(chosen):
        chosen.append(("momentum", 0.9))
    return tuple(chosen)


def _partition(fqns, assignment, group_hparams) -> tuple[GroupSpec, ...]:
    return tuple(
        GroupSpec(tuple(f for f, a in zip(fqns, assignment) if a == g), group_hparams[g])
        for g in sorted(set(assignment[: len(fqns)]))
    )


@st.composite
def core_scenarios(
    draw, *, world_sizes: Sequence[int], plan_kinds: Sequence[str], max_steps: int = 3, min_steps: int = 0
) -> Scenario:
    """Whole core scenarios; the model is drawn last (see `_scenario.full_scenarios`)."""
    kinds = [k for k in plan_kinds if k in CORE_PLANS]
    if not kinds:
        raise ValueError(f"none of the plans {list(plan_kinds)} is in the core space {CORE_PLANS}")
    kind = draw(st.sampled_from(kinds))
    sizes = sorted(w for w in world_sizes if plan_accepts(PlanSpec(kind), w) is None)
    world_size = draw(st.sampled_from(sizes))
    name = draw(st.sampled_from(["adam", "sgd", "adamw"]))
    assignment = draw(st.tuples(*[st.integers(0, MAX_GROUPS - 1)] * (2 * MAX_LAYERS)))
    group_hparams = draw(st.tuples(*[_hparams(name)] * MAX_GROUPS))
    own_shard = draw(st.tuples(*[st.booleans()] * MAX_LAYERS))
    steps = draw(st.integers(min_steps, max_steps))
    seed = draw(st.integers(0, 2**16))
    model = draw(core_models())
    shard = tuple(f for f, own in zip(model.layer_fqns(), own_shard) if own) if kind == "fsdp2" else ()
    return Scenario(
        seed=seed,
        world_size=world_size,
        model=model,
        optimizers=(OptimizerSpec(name, _partition(model.param_fqns(), assignment, group_hparams)),),
        plan=PlanSpec(kind, shard=shard),
        steps=steps,
    )
