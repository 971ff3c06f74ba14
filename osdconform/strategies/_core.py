"""The core space: the scenarios the ``ci`` runs draw by default (``--osd-space=core``).

MLPs of 1-3 ``Linear`` layers (widths 1-9, so dims smaller than and not
divisible by the world size, and empty local shards, come up all the time);
SGD with momentum, Adam, AdamW in 1-3 param groups with their own
hyperparameters; plans ``none``, ``ddp``, ``fsdp2``, or, for a backend that
runs none of those (the ``fsdp1`` and ``zero`` backends), ``fsdp1`` and
``zero`` in their default form.  Every property of every
built-in backend is checked green on it, and torch's defects in it are
recorded.  The whole space (`_scenario.full_scenarios`: module trees, every
torch.optim optimizer, every plan) is drawn with ``--osd-space=full``; see
the README for what is known to fail there.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from hypothesis import strategies as st

from ..scenario import GroupSpec, ModelSpec, OptimizerSpec, PlanSpec, Scenario, plan_accepts
from ._schedulers import scheduler_specs
from ._schedulers import schedulers as maybe_scheduler

CORE_PLANS = ("none", "ddp", "fsdp2")
#: Drawn only for a backend that runs none of `CORE_PLANS`, so that every
#: built-in backend is checked by the default run.
FALLBACK_PLANS = ("fsdp1", "zero")
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


def core_plan_kinds(plan_kinds: Sequence[str]) -> list[str]:
    """The kinds of `plan_kinds` the core space draws: the core ones, else the fallbacks."""
    return [k for k in plan_kinds if k in CORE_PLANS] or [k for k in plan_kinds if k in FALLBACK_PLANS]


@st.composite
def core_plans(draw, kind: str, model: ModelSpec) -> PlanSpec:
    """`kind` in its default form; FSDP wraps a drawn subset of the layers on their own."""
    if kind not in ("fsdp1", "fsdp2"):
        return PlanSpec(kind)
    own = draw(st.tuples(*[st.booleans()] * len(model.layer_fqns())))
    return PlanSpec(kind, shard=tuple(f for f, o in zip(model.layer_fqns(), own) if o))


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
def _with_schedulers(draw, optimizer: OptimizerSpec, fqns: tuple[str, ...]) -> tuple[OptimizerSpec, ...]:
    """Property 10's part of the core space: a scheduler on the optimizer, and/or its
    parameters split between two optimizers (the second over the model's last
    parameters, in one group), each maybe with a scheduler of its own."""
    several = len(fqns) > 1 and draw(st.booleans())
    first_scheduler = draw(scheduler_specs() if not several else maybe_scheduler())
    if not several:
        return (replace(optimizer, scheduler=first_scheduler),)
    cut = draw(st.integers(1, len(fqns) - 1))
    tail = set(fqns[cut:])
    groups = tuple(replace(g, params=tuple(f for f in g.params if f not in tail)) for g in optimizer.groups)
    head = replace(optimizer, groups=tuple(g for g in groups if g.params), scheduler=first_scheduler)
    name = draw(st.sampled_from(["adam", "sgd", "adamw"]))
    hparams = (("momentum", 0.9),) if name == "sgd" else ()  # so SGD keeps state
    return head, OptimizerSpec(name, (GroupSpec(fqns[cut:], hparams),), scheduler=draw(maybe_scheduler()))


@st.composite
def core_scenarios(
    draw,
    *,
    world_sizes: Sequence[int],
    plan_kinds: Sequence[str],
    max_steps: int = 3,
    min_steps: int = 0,
    schedulers: bool = False,
) -> Scenario:
    """Whole core scenarios; the model is drawn last (see `_scenario.full_scenarios`).

    With ``schedulers=True``, only scenarios with LR schedulers or several
    optimizers (property 10).
    """
    kinds = core_plan_kinds(plan_kinds)
    if not kinds:
        raise ValueError(
            f"none of the plans {list(plan_kinds)} is in the core space {CORE_PLANS + FALLBACK_PLANS}"
        )
    kind = draw(st.sampled_from(kinds))
    sizes = sorted(w for w in world_sizes if plan_accepts(PlanSpec(kind), w) is None)
    world_size = draw(st.sampled_from(sizes))
    name = draw(st.sampled_from(["adam", "sgd", "adamw"]))
    assignment = draw(st.tuples(*[st.integers(0, MAX_GROUPS - 1)] * (2 * MAX_LAYERS)))
    group_hparams = draw(st.tuples(*[_hparams(name)] * MAX_GROUPS))
    steps = draw(st.integers(min_steps, max_steps))
    seed = draw(st.integers(0, 2**16))
    model = draw(core_models())
    plan = draw(core_plans(kind, model))
    optimizer = OptimizerSpec(name, _partition(model.param_fqns(), assignment, group_hparams))
    optimizers = draw(_with_schedulers(optimizer, model.param_fqns())) if schedulers else (optimizer,)
    return Scenario(
        seed=seed,
        world_size=world_size,
        model=model,
        optimizers=optimizers,
        plan=plan,
        steps=steps,
    )
