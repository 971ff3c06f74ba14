"""The core space: a quick first look (``--osd-space=core``; runs draw the full space by default).

MLPs of 1-3 ``Linear`` layers (widths 1-9, so dims smaller than and not
divisible by the world size, and empty local shards, come up all the time);
SGD with momentum, Adam, AdamW in 1-3 param groups with their own
hyperparameters; plans ``none``, ``ddp``, ``fsdp2``, or, for a backend that
runs none of those (the ``fsdp1`` and ``zero`` backends), ``fsdp1`` and
``zero`` in their default form.  It was the default space until every
built-in backend was green in the full one (issue 18); the framework
adapters' expected failures are still recorded on it.  On CUDA (``--osd-device=cuda``) the optimizer also takes
``fused`` and/or ``capturable`` where torch allows them (`CUDA_CORE_FLAGS`):
the device-only bugs are there (``step`` on the wrong device after a load,
pytorch/pytorch#103256, #104767, #124133).  On CPU no flag is drawn and
nothing is drawn for them, so CPU draws are what they were.  The whole space
(`_scenario.full_scenarios`: module trees, every torch.optim optimizer,
every plan) is what runs draw by default (``--osd-space=full``); see the
README for what is known to fail there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Sequence

from hypothesis import strategies as st

from ..scenario import GroupSpec, MLPSpec, OptimizerSpec, PlanSpec, Scenario, plan_accepts
from ._models import mlp_models
from ._optimizers import BETAS, EPS, LR, flag_sets, hparams, partition, substitute
from ._schedulers import scheduler_specs
from ._schedulers import schedulers as maybe_scheduler

CORE_PLANS = ("none", "ddp", "fsdp2")
#: Drawn only for a backend that runs none of `CORE_PLANS`, so that every
#: built-in backend is checked by the default run.
FALLBACK_PLANS = ("fsdp1", "zero")
CORE_OPTIMIZERS = ("adam", "sgd", "adamw")
MAX_DIM = 9
MAX_LAYERS = 3
MAX_GROUPS = 3
#: Each possible parameter's group (two per layer), drawn whatever the model.
_ASSIGNMENT = st.tuples(*[st.integers(0, MAX_GROUPS - 1)] * (2 * MAX_LAYERS))

#: The core space's hyperparameter table for `_optimizers.hparams`: the full
#: space's values where they are the same pieces, fewer hyperparameters.
_WD = st.sampled_from([0.0, 1e-2, 0.1])
_HPARAMS = {
    "sgd": {
        "lr": LR,
        "momentum": st.sampled_from([0.9, 0.5, 0.99]),  # > 0, so SGD keeps state
        "weight_decay": _WD,
        "dampening": st.sampled_from([0.0, 0.1]),
    },
    "adam": {"lr": LR, "betas": BETAS, "weight_decay": _WD, "eps": EPS},
    "adamw": {"lr": LR, "betas": BETAS, "weight_decay": st.sampled_from([1e-2, 0.0, 0.1])},
}


#: The flag sets the core space draws on CUDA, per optimizer: those of ``fused`` and
#: ``capturable`` torch takes there, the empty one first (so flags shrink away).
CUDA_CORE_FLAGS: dict[str, list[tuple[str, ...]]] = {
    name: [f for f in flag_sets(name, device="cuda") if set(f) <= {"fused", "capturable"}]
    for name in CORE_OPTIMIZERS
}


def core_flags(name: str, choice: int, plan_kind: str, device: str) -> tuple[str, ...]:
    """The flags of the core optimizer `name`: none on CPU; on CUDA the `choice`-th of
    `CUDA_CORE_FLAGS`, less what `plan_kind` cannot run (fused SGD under FSDP2)."""
    if device != "cuda":
        return ()
    options = CUDA_CORE_FLAGS[name]
    return substitute(name, options[choice % len(options)], plan_kind)[1]


def core_plan_kinds(plan_kinds: Sequence[str]) -> list[str]:
    """The kinds of `plan_kinds` the core space draws: the core ones, else the fallbacks."""
    return [k for k in plan_kinds if k in CORE_PLANS] or [k for k in plan_kinds if k in FALLBACK_PLANS]


@st.composite
def core_plans(draw, kind: str, model: MLPSpec) -> PlanSpec:
    """`kind` in its default form; FSDP wraps a drawn subset of the layers on their own."""
    return _fit_plan(kind, draw(_unit_flags()), model)


@functools.lru_cache(maxsize=None)
def _unit_flags() -> st.SearchStrategy[tuple[bool, ...]]:
    """For each possible layer: whether FSDP wraps it on its own (drawn whatever the plan)."""
    return st.tuples(*[st.booleans()] * MAX_LAYERS)


def _fit_plan(kind: str, own: tuple[bool, ...], model: MLPSpec) -> PlanSpec:
    if kind not in ("fsdp1", "fsdp2"):
        return PlanSpec(kind)
    return PlanSpec(kind, shard=tuple(f for f, o in zip(model.layer_fqns(), own) if o))


def core_models() -> st.SearchStrategy[MLPSpec]:
    """The full space's MLPs, up to `MAX_LAYERS` layers of width up to `MAX_DIM`."""
    return mlp_models(max_layers=MAX_LAYERS, max_dim=MAX_DIM)


def _hparams(optimizer: str) -> st.SearchStrategy[tuple[tuple[str, Any], ...]]:
    """`_optimizers.hparams` over the core table; SGD always keeps momentum (so, state)."""
    drawn = hparams(optimizer, table=_HPARAMS)
    return drawn.map(_with_momentum) if optimizer == "sgd" else drawn


@functools.lru_cache(maxsize=None)
def _group_hparams(optimizer: str) -> st.SearchStrategy:
    """Every group's `_hparams`, built once per optimizer (Hypothesis validates a new
    strategy object at its first draw; the draws are the same)."""
    return st.tuples(*[_hparams(optimizer)] * MAX_GROUPS)


def _with_momentum(hp: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    return hp if "momentum" in dict(hp) else (*hp, ("momentum", 0.9))


@dataclass(frozen=True)
class _SchedulerChoices:
    """Property 10's choices, drawn before the model (see `_with_schedulers`)."""

    several: bool  # split the parameters between two optimizers
    first: Any  # the (first) optimizer's scheduler
    bare_head: bool  # when split: the first optimizer has no scheduler after all
    cut: int  # when split: the second optimizer takes the parameters from this index on
    name: str  # when split: the second optimizer's class
    second: Any  # when split: its scheduler, or None


@st.composite
def _scheduler_choices(draw) -> _SchedulerChoices:
    return _SchedulerChoices(
        several=draw(st.booleans()),
        first=draw(scheduler_specs()),
        bare_head=draw(st.booleans()),
        cut=draw(st.integers(1, 2 * MAX_LAYERS - 1)),
        name=draw(st.sampled_from(CORE_OPTIMIZERS)),
        second=draw(maybe_scheduler()),
    )


def _with_schedulers(
    c: _SchedulerChoices, optimizer: OptimizerSpec, fqns: tuple[str, ...]
) -> tuple[OptimizerSpec, ...]:
    """Property 10's part of the core space: a scheduler on the optimizer, and/or its
    parameters split between two optimizers (the second over the model's last
    parameters, in one group), each maybe with a scheduler of its own.

    (A one-parameter model cannot be split: its optimizer gets a scheduler.)
    """
    if not (c.several and len(fqns) > 1):
        return (replace(optimizer, scheduler=c.first),)
    cut = min(c.cut, len(fqns) - 1)
    tail = set(fqns[cut:])
    groups = tuple(replace(g, params=tuple(f for f in g.params if f not in tail)) for g in optimizer.groups)
    head_scheduler = None if c.bare_head else c.first
    head = replace(optimizer, groups=tuple(g for g in groups if g.params), scheduler=head_scheduler)
    hp = (("momentum", 0.9),) if c.name == "sgd" else ()  # so SGD keeps state
    return head, OptimizerSpec(c.name, (GroupSpec(fqns[cut:], hp),), scheduler=c.second)


@st.composite
def core_scenarios(
    draw,
    *,
    world_sizes: Sequence[int],
    plan_kinds: Sequence[str],
    max_steps: int = 3,
    min_steps: int = 0,
    schedulers: bool = False,
    device: str = "cpu",
) -> Scenario:
    """Whole core scenarios; the model is drawn last (see `_scenario.full_scenarios`).

    With ``schedulers=True``, only scenarios with LR schedulers or several
    optimizers (property 10).  `device` is where the ranks train: on
    ``cuda`` the (first) optimizer's flags are drawn (`core_flags`).
    """
    kinds = core_plan_kinds(plan_kinds)
    if not kinds:
        raise ValueError(
            f"none of the plans {list(plan_kinds)} is in the core space {CORE_PLANS + FALLBACK_PLANS}"
        )
    kind = draw(st.sampled_from(kinds))
    sizes = sorted(w for w in world_sizes if plan_accepts(PlanSpec(kind), w) is None)
    world_size = draw(st.sampled_from(sizes))
    name = draw(st.sampled_from(CORE_OPTIMIZERS))
    # Drawn on CUDA only, so that CPU runs draw exactly the sequence they always did.
    flag_choice = draw(st.integers(0, 3)) if device == "cuda" else 0
    assignment = draw(_ASSIGNMENT)
    # Every class's hyperparameters are drawn, so shrinking the class moves no later draw.
    group_hparams = {n: draw(_group_hparams(n)) for n in CORE_OPTIMIZERS}[name]
    steps = draw(st.integers(min_steps, max_steps))
    seed = draw(st.integers(0, 2**16))
    # Everything is drawn before the model, whatever the plan, and cut to it
    # afterwards: so when the shrinker removes a layer or moves the plan,
    # no other draw changes meaning.
    own = draw(_unit_flags())
    choices = draw(_scheduler_choices()) if schedulers else None
    model = draw(core_models())
    plan = _fit_plan(kind, own, model)
    optimizer = OptimizerSpec(
        name, partition(model.param_fqns(), assignment, group_hparams), core_flags(name, flag_choice, kind, device)
    )
    optimizers = _with_schedulers(choices, optimizer, model.param_fqns()) if schedulers else (optimizer,)
    return Scenario(
        seed=seed,
        world_size=world_size,
        model=model,
        optimizers=optimizers,
        plan=plan,
        steps=steps,
    )
