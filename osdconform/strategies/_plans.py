"""Strategies for the plan dimension (see `osdconform.scenario._plans`).

Same blueprint pattern as `_optimizers`: every choice a plan of the drawn kind
can make is drawn before the model, at the largest size any model can need
(one flag per possible unit, one TP style per possible Linear, placements
per possible parameter and mesh dim), and `fit_plan` cuts it to the model and
the world size.  So when the shrinker removes a layer, no other draw moves.

Every choice shrinks toward the simplest plan of its kind: no unit of its
own, ``reshard_after_forward=True``, a 1-D mesh, FULL_SHARD with
no TP style, replicated parameters, no wrapper.  Whatever the
blueprint says that the world or model cannot take is dropped by `fit_plan`
(a 2-D mesh on a world that does not factor, a shard dim a parameter lacks).
The model's wrappers and mixed precision are the exception: the full space
derives them from the example's seed (`wrapping_of_seed`,
`mixed_precision_of_seed`), drawing nothing for them.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Sequence

from hypothesis import strategies as st

from ..scenario import PLAN_KINDS, AnyModelSpec, PlanSpec, plan_accepts
from ..scenario._plans import FSDP1_STRATEGIES, MIXED_PRECISION_PLANS, TP_STYLES, mesh_shape_2d
from ..scenario._refusals import batchnorm_param_fqns, conv_param_fqns, embedding_param_fqns, empty_tp_pieces
from ._models import MAX_PARAMS, MAX_UNITS

#: A Linear has at least one parameter, so no model has more Linears than this.
MAX_LINEARS = MAX_PARAMS
#: Placement codes per mesh dim: 0 is Replicate, k > 0 is Shard((k - 1) % ndim).
_PLACEMENT_CODES = st.integers(0, 3)


@dataclass(frozen=True)
class PlanBlueprint:
    """Plan choices drawn before the model, cut to it by `fit_plan`."""

    kind: str
    own_shard: tuple[bool, ...] = (False,) * MAX_UNITS
    reshard_after_forward: bool = True
    mesh_2d: bool = False
    use_orig_params: bool = True
    sharding_strategy: str = "FULL_SHARD"
    tp_styles: tuple[int, ...] = (0,) * MAX_LINEARS  # 0: none, i: TP_STYLES[i - 1]
    placements: tuple[tuple[int, int], ...] = ((0, 0),) * MAX_PARAMS


# Built once, not per draw (Hypothesis validates a new strategy object at its first draw).
_OWN_SHARD = st.tuples(*[st.booleans()] * MAX_UNITS)
_TP_STYLE_CODES = st.tuples(*[st.integers(0, len(TP_STYLES))] * MAX_LINEARS)
_PLACEMENTS = st.tuples(*[st.tuples(_PLACEMENT_CODES, _PLACEMENT_CODES)] * MAX_PARAMS)
#: What wraps a unit, innermost first: none, activation checkpointing, torch.compile,
#: a compiled checkpoint-wrapped unit (torchtitan's order) or the other way round.
_WRAP_CODES = ((), ("checkpoint",), ("compile",), ("checkpoint", "compile"), ("compile", "checkpoint"))
_WRAP_CODE = st.integers(0, len(_WRAP_CODES) - 1)


@st.composite
def plan_blueprints(draw, kind: str) -> PlanBlueprint:
    """Choices for a plan of `kind`.

    Every field is drawn whatever the kind, and `fit_plan` reads those its
    kind takes: so when the shrinker moves the kind (toward ``none``), no
    draw after it changes meaning and the rest of the scenario stays put.
    FSDP1 is drawn with ``use_orig_params=True`` only: without it the
    optimizer sees flat parameters, which have no FQNs (see `accepts`).
    """
    own_shard = draw(_OWN_SHARD)
    reshard_after_forward = not draw(st.booleans())
    mesh_2d = draw(st.booleans())
    sharding_strategy = draw(st.sampled_from(FSDP1_STRATEGIES))
    tp_styles = draw(_TP_STYLE_CODES)
    placements = draw(_PLACEMENTS)
    return PlanBlueprint(
        kind,
        own_shard=own_shard,
        reshard_after_forward=reshard_after_forward,
        mesh_2d=mesh_2d,
        sharding_strategy=sharding_strategy,
        tp_styles=tp_styles,
        placements=placements,
    )


def _placement(code: int, ndim: int) -> str:
    if code == 0 or ndim == 0:
        return "R"  # a 0-d parameter has no dim to shard
    return f"S{(code - 1) % ndim}"


#: Whether the full space draws wrapped models (`full_scenarios(wrapped=...)` overrides).
DRAW_WRAPPERS = True
#: Whether the full space draws FSDP plans that compute in bfloat16
#: (`full_scenarios(mixed_precision=...)` overrides).
DRAW_MIXED_PRECISION = True


def _wrapping(model: AnyModelSpec, pick) -> tuple[tuple[str, str], ...]:
    """Activation checkpointing and torch.compile for `model`'s units, chosen by
    `pick(n)` (a number below n): about one model in four is wrapped at all,
    and a third of those compiled as a whole too."""
    if pick(4):
        return ()
    chosen = [(fqn, w) for fqn in model.layer_fqns() for w in _WRAP_CODES[pick(len(_WRAP_CODES))]]
    if not pick(3):
        chosen.append(("", "compile"))
    return tuple(chosen)


def wrapping_of_seed(model: AnyModelSpec, seed: int, salt: str = "") -> tuple[tuple[str, str], ...]:
    """How the full space wraps `model` in an example whose data seed is `seed`.

    A function of draws already made, not draws of its own: a draw more in
    every example would move every later example of a derandomized run, and
    each suite's expected failures were checked against the examples it
    draws.  Wrapping thus changes only the examples it wraps.  Seed 0 (where
    the shrinker takes a seed first) wraps nothing, so a failure shrinks to
    an unwrapped model unless the wrapping is needed, and then to the smallest
    seed that wraps the model so.  `salt` gives a second model of the same
    example (a reshard's target) a wrapping of its own.
    """
    if seed == 0:
        return ()
    rng = random.Random(f"osdconform-wrap-{salt}-{seed}")
    return _wrapping(model, rng.randrange)


def wrapped_by_seed(
    plan: PlanSpec, model: AnyModelSpec, world_size: int, seed: int, salt: str = "", steps: int | None = None
) -> PlanSpec:
    """`plan` with the wrapping `wrapping_of_seed` gives, unless torch cannot train
    the model so (`scenario._refusals`): then `plan` as it is, so that wrapping
    never turns an example away (a rejected example, too, moves the later ones)."""
    wrap = wrapping_of_seed(model, seed, salt)
    if not wrap:
        return plan
    wrapped = dataclasses.replace(plan, wrap=wrap)
    if plan_accepts(wrapped, world_size, model, steps) is not None and plan_accepts(plan, world_size, model, steps) is None:
        return plan
    return wrapped


def mixed_precision_of_seed(seed: int, salt: str = "") -> bool:
    """Whether the full space makes an FSDP plan compute in bfloat16 in an
    example whose data seed is `seed`: one in three, never at seed 0 (so a
    failure shrinks to full precision unless it needs mixed precision).  A
    function of the seed for the reason `wrapping_of_seed` gives."""
    if seed == 0:
        return False
    return random.Random(f"osdconform-precision-{salt}-{seed}").randrange(3) == 0


def pipelined_of_seed(seed: int, salt: str = "") -> bool:
    """Whether the full space makes an example of plan ``none`` on several ranks a
    pipeline (``pp``) instead: one nonzero seed in two, never seed 0 (so a
    failure shrinks to no pipeline unless it needs one).  A function of the
    seed for the reason `wrapping_of_seed` gives: adding pipelines to the
    space moved no other example of a derandomized run."""
    if seed == 0:
        return False
    return random.Random(f"osdconform-pipeline-{salt}-{seed}").randrange(2) == 0


def dressed_by_seed(
    plan: PlanSpec, model: AnyModelSpec, world_size: int, seed: int, salt: str = "", steps: int | None = None,
    *, wrapped: bool = True, mixed_precision: bool = True,
) -> PlanSpec:
    """`plan` as the full space runs it in an example of `seed`: the model wrapped
    (`wrapped_by_seed`) and an FSDP plan in mixed precision (`mixed_precision_of_seed`)
    where the seed says so and torch can train it so; each is left out, never
    the example turned away, where it cannot.  `wrapped`, `mixed_precision`:
    whether to consider each at all."""
    if wrapped:
        plan = wrapped_by_seed(plan, model, world_size, seed, salt, steps)
    if mixed_precision and plan.kind in MIXED_PRECISION_PLANS and mixed_precision_of_seed(seed, salt):
        mixed = dataclasses.replace(plan, mixed_precision=True)
        if plan_accepts(mixed, world_size, model, steps) is None:
            return mixed
    return plan


@st.composite
def wraps(draw, model: AnyModelSpec) -> tuple[tuple[str, str], ...]:
    """Wrappers for `model`'s units as draws of their own (for composing your own
    strategies, `plans`; the full space derives them from the seed instead:
    `wrapping_of_seed`), as often as `_wrapping` gives them.  Every draw shrinks
    to no wrapper: no model wrapped, no unit wrapped, the model not compiled."""
    if draw(st.integers(0, 3)) != 3:
        return ()
    chosen = [(fqn, w) for fqn in model.layer_fqns() for w in _WRAP_CODES[draw(_WRAP_CODE)]]
    if draw(st.integers(0, 2)) == 2:
        chosen.append(("", "compile"))
    return tuple(chosen)


def fit_plan(blueprint: PlanBlueprint, model: AnyModelSpec, world_size: int) -> PlanSpec:
    """The plan the blueprint chose, cut to `model` and `world_size`."""
    kind = blueprint.kind
    two_d = mesh_shape_2d(world_size) is not None
    if kind == "fsdp1":
        strategy = blueprint.sharding_strategy
        if strategy == "HYBRID_SHARD" and not two_d:
            strategy = "FULL_SHARD"  # HYBRID_SHARD needs a replicate x shard mesh
        return PlanSpec(
            kind,
            shard=_units(blueprint, model),
            use_orig_params=blueprint.use_orig_params,
            sharding_strategy=strategy,
        )
    if kind == "fsdp2":
        return PlanSpec(
            kind,
            shard=_units(blueprint, model),
            reshard_after_forward=blueprint.reshard_after_forward,
            mesh_2d=blueprint.mesh_2d and two_d,
        )
    if kind == "tp":
        return PlanSpec(kind, tp=_tp(blueprint, model))
    if kind == "fsdp2+tp":
        plan = PlanSpec(
            kind,
            shard=_units(blueprint, model),
            reshard_after_forward=blueprint.reshard_after_forward,
            tp=_tp(blueprint, model),
        )
        # Drop the TP styles that FSDP2 cannot train on (see `accepts`).
        empty = set(empty_tp_pieces(plan, model, mesh_shape_2d(world_size)[1]))
        tp = tuple((f, s) for f, s in plan.tp if f"{f}.weight" not in empty and f"{f}.bias" not in empty)
        return dataclasses.replace(plan, tp=tp)
    if kind == "dtensor":
        mesh_2d = blueprint.mesh_2d and two_d
        ndims = 2 if mesh_2d else 1
        placements = []
        # Replicated: see `scenario._refusals.accepts` (DTensor conv, batch norm, embedding).
        convs = bool(conv_param_fqns(model))
        norms = batchnorm_param_fqns(model) | embedding_param_fqns(model)
        for (fqn, shape), codes in zip(model.param_shapes().items(), blueprint.placements):
            places = tuple(_placement(c, len(shape)) for c in codes[:ndims])
            if convs or fqn in norms:
                continue
            if any(p != "R" for p in places):  # unlisted parameters are replicated
                placements.append((fqn, places))
        return PlanSpec(kind, mesh_2d=mesh_2d, placements=tuple(placements))
    return PlanSpec(kind)


def _units(blueprint: PlanBlueprint, model: AnyModelSpec) -> tuple[str, ...]:
    return tuple(f for f, own in zip(model.layer_fqns(), blueprint.own_shard) if own)


def _tp(blueprint: PlanBlueprint, model: AnyModelSpec) -> tuple[tuple[str, str], ...]:
    return tuple(
        (fqn, TP_STYLES[code - 1]) for fqn, code in zip(model.linear_fqns(), blueprint.tp_styles) if code
    )


@st.composite
def plans(
    draw, model: AnyModelSpec, kinds: Sequence[str] = PLAN_KINDS, world_size: int = 4,
    seed: int | None = None, salt: str = "plan",
) -> PlanSpec:
    """A plan for `model` at `world_size` (for composing your own strategies).

    Its wrappers are drawn (`wraps`), and an FSDP plan's mixed precision
    (shrinking to off); or, given the example's `seed`, both are derived from
    it as the full space does (`dressed_by_seed`, with `salt`; as far as
    `DRAW_WRAPPERS` and `DRAW_MIXED_PRECISION` allow): a reshard's target
    plan then draws nothing more.
    """
    kind = draw(st.sampled_from(list(kinds)))
    plan = fit_plan(draw(plan_blueprints(kind)), model, world_size)
    if seed is not None:
        return dressed_by_seed(
            plan, model, world_size, seed, salt, wrapped=DRAW_WRAPPERS, mixed_precision=DRAW_MIXED_PRECISION
        )
    wrap = draw(wraps(model))
    if wrap:
        plan = dataclasses.replace(plan, wrap=wrap)
    if kind in MIXED_PRECISION_PLANS and draw(st.booleans()):
        mixed = dataclasses.replace(plan, mixed_precision=True)
        if plan_accepts(mixed, world_size, model) is None:
            plan = mixed
    return plan
