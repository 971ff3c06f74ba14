"""Strategies for the optimizer dimension (see `osdconform.scenario._optimizers`).

The pattern every dimension follows so that shrinking works: a *blueprint* is
drawn before the model, at the largest size any model can need (for each
possible parameter: which optimizer owns it, which group, where in the group;
for each possible optimizer: its class, flags, scheduler and every possible
group's hyperparameters), and `fit_optimizers` cuts it to the model drawn
afterwards.  So when the shrinker removes a layer, no other draw moves.

Every choice shrinks toward its simplest value: one optimizer (the first of
`OPTIMIZER_NAMES`: plain SGD, which keeps no state), no flags, no scheduler,
one group with torch's defaults, parameters in model order, no empty group,
no custom key, float lr.

Flags depend on the device the ranks train on (``device``, the run's
``--osd-device``): on ``cuda`` ``capturable`` is drawn alone too, and fused
Adagrad is not (`scenario._catalogue.flags_problem`).  On ``cpu`` the draws
are exactly what they were before devices were known here.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, replace
from typing import Any, Sequence

from hypothesis import strategies as st

from ..scenario import AnyModelSpec, GroupSpec, OptimizerSpec, TensorValue
from ..scenario._catalogue import (
    MIXED_TENSOR_PLANS,
    OPTIMIZER_NAMES,
    WHOLE_PARAM_PLANS,
    accepts_param,
    constructor_defaults,
    flags_problem,
    kind_flags,
    kind_of,
    tensor_lr_problem,
)
from ..scenario._schedulers import SchedulerSpec
from ._models import MAX_PARAMS
from ._schedulers import schedulers

MAX_GROUPS = 3
MAX_OPTIMIZERS = 3

#: Hyperparameters per known optimizer; each is left at torch's default or drawn.
#: (`LR`, `BETAS`, `EPS`: values the core space draws too.)
LR = st.sampled_from([1e-3, 1e-2, 0.1, 0.5])
_WD = st.sampled_from([1e-2, 0.1])
BETAS = st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)])
EPS = st.sampled_from([1e-8, 1e-6])
_ON = st.just(True)
_HPARAMS: dict[str, dict[str, st.SearchStrategy]] = {
    # SGD: momentum 0 (the default) is plain SGD, which keeps no state;
    # nesterov needs momentum > 0 and dampening 0 (see `_consistent`).
    "sgd": {
        "lr": LR,
        "momentum": st.sampled_from([0.9, 0.5]),
        "dampening": st.sampled_from([0.1]),
        "nesterov": _ON,
        "weight_decay": _WD,
    },
    "adam": {"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": _WD, "amsgrad": _ON,
             "decoupled_weight_decay": _ON},
    "adamw": {"lr": LR, "betas": BETAS, "weight_decay": st.sampled_from([0.0, 0.1]), "amsgrad": _ON},
    "adagrad": {"lr": LR, "lr_decay": st.sampled_from([0.01]), "weight_decay": _WD,
                "initial_accumulator_value": st.sampled_from([0.1]), "eps": EPS},
    "adadelta": {"lr": st.sampled_from([0.1, 0.5]), "rho": st.sampled_from([0.5]), "eps": EPS,
                 "weight_decay": _WD},
    "adamax": {"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": _WD},
    "nadam": {"lr": LR, "betas": BETAS, "weight_decay": _WD, "momentum_decay": st.sampled_from([0.01]),
              "decoupled_weight_decay": _ON},
    "radam": {"lr": LR, "betas": BETAS, "weight_decay": _WD, "decoupled_weight_decay": _ON},
    "rmsprop": {"lr": LR, "alpha": st.sampled_from([0.9]), "eps": EPS, "weight_decay": _WD,
                "momentum": st.sampled_from([0.9, 0.5]), "centered": _ON},
    "rprop": {"lr": LR, "etas": st.sampled_from([(0.4, 1.5)]), "step_sizes": st.sampled_from([(1e-4, 1.0)])},
    # t0 (default 1e6) is the step at which ASGD starts averaging; drawn small
    # so that `ax` and `mu` hold more than their initial values.
    "asgd": {"lr": LR, "lambd": st.sampled_from([1e-2]), "alpha": st.sampled_from([0.5]),
             "t0": st.sampled_from([0.0, 1.0]), "weight_decay": _WD},
    "adafactor": {"lr": LR, "beta2_decay": st.sampled_from([-0.5]), "d": st.sampled_from([2.0]),
                  "weight_decay": _WD},
    "lbfgs": {"lr": st.sampled_from([0.1, 0.5]), "max_iter": st.sampled_from([1, 3]),
              "history_size": st.sampled_from([2, 5]), "line_search_fn": st.just("strong_wolfe")},
    "sparseadam": {"lr": LR, "betas": BETAS, "eps": EPS},
    "muon": {"lr": LR, "weight_decay": st.sampled_from([0.0, 0.01]), "momentum": st.sampled_from([0.9]),
             "nesterov": st.just(False), "ns_steps": st.sampled_from([1, 3]),
             "adjust_lr_fn": st.sampled_from(["original", "match_rms_adamw"])},
}

#: Custom param-group keys (torch keeps them as given).  ``initial_lr`` is
#: also the key LR schedulers set (with ``setdefault``), so a custom value
#: changes what a scheduler starts from.
_CUSTOM_KEYS = {
    "name": st.sampled_from(["head", "body"]),
    "initial_lr": st.sampled_from([0.05, 1.0]),
    "tag": st.sampled_from([0, 7]),
}


def optimizer_names(plan_kind: str | None = None) -> st.SearchStrategy[str]:
    """Optimizer names; with `plan_kind`, only those that can run under it.

    (`optimizer_blueprints` draws among all names and lets `fit_optimizers`
    substitute, so that shrinking the plan moves no other draw.)
    """
    return st.sampled_from([n for n in OPTIMIZER_NAMES if runs_under(n, plan_kind)])


def _sharded(plan_kind: str | None) -> bool:
    return plan_kind is not None and plan_kind not in WHOLE_PARAM_PLANS


def runs_under(name: str, plan_kind: str | None) -> bool:
    if plan_kind == "pp" and kind_of(name).needs_closure:  # see `PIPELINE_CLOSURE_REASON`
        return False
    return not (_sharded(plan_kind) and kind_of(name).sharded)


def flag_sets(name: str, plan_kind: str | None = None, device: str = "cpu") -> list[tuple[str, ...]]:
    """Every valid flag combination for `name` (under `plan_kind`, on `device`), the empty one first."""
    kind = kind_of(name)
    flags = sorted(kind_flags(name, device))
    out = []
    for r in range(len(flags) + 1):
        for combo in itertools.combinations(flags, r):
            if flags_problem(name, combo, device) is None and not (
                _sharded(plan_kind) and "fused" in combo and kind.fused_sharded
            ):
                out.append(combo)
    return out


def substitute(name: str, flags: tuple[str, ...], plan_kind: str | None) -> tuple[str, tuple[str, ...]]:
    """What runs under `plan_kind` in place of optimizer `name` with `flags`.

    Blueprints draw among every optimizer and flag set whatever the plan, so
    that when the shrinker moves the plan toward ``none`` no other draw moves
    (a draw that depended on the plan would change meaning and scramble the
    rest of the scenario).  Under a sharded plan, an optimizer that cannot
    step sharded parameters (`OptimizerKind.sharded` says why) is replaced by
    a runnable one, picked by its position so that each runnable optimizer
    is about as likely as before; a fused kernel without a sharding rule
    (`OptimizerKind.fused_sharded`: SGD, Adagrad, which take no ``capturable``)
    loses ``fused``; under a plan that mixes DTensor and plain parameters
    (`MIXED_TENSOR_PLANS`) ``foreach`` and ``fused`` go too.
    """
    if not runs_under(name, plan_kind):
        runnable = [n for n in OPTIMIZER_NAMES if runs_under(n, plan_kind)]
        name = runnable[OPTIMIZER_NAMES.index(name) % len(runnable)]
        flags = ()
    if _sharded(plan_kind) and "fused" in flags and kind_of(name).fused_sharded:
        flags = tuple(f for f in flags if f not in ("fused", "capturable"))
    if plan_kind in MIXED_TENSOR_PLANS:  # see `MIXED_TENSOR_REASON`
        flags = tuple(f for f in flags if f not in ("foreach", "fused", "capturable"))
    return name, flags


def _consistent(name: str, chosen: dict[str, Any]) -> dict[str, Any]:
    """Drop draws torch would refuse together (so every drawn group is valid)."""
    if name == "sgd" and chosen.get("nesterov") and (
        not chosen.get("momentum") or chosen.get("dampening", 0) != 0
    ):
        del chosen["nesterov"]
    return chosen


@st.composite
def hparams(draw, optimizer: str, table: dict[str, dict[str, st.SearchStrategy]] | None = None):
    """Per-group hyperparameters; each one is either left at the default or drawn.

    `table` (default: the full space's) maps an optimizer to the values of
    each hyperparameter; the core space passes a narrower one (`_core`).
    """
    chosen = {}
    for name, values in (_HPARAMS if table is None else table).get(optimizer, {}).items():
        if draw(st.booleans()):
            chosen[name] = draw(values)
    return tuple(_consistent(optimizer, chosen).items())


@dataclass(frozen=True)
class GroupExtras:
    """Per-group choices beyond hyperparameters: lr as a tensor, custom keys, kept if empty."""

    tensor_lr: bool = False
    custom: tuple[tuple[str, Any], ...] = ()
    keep_if_empty: bool = False


@functools.lru_cache(maxsize=None)
def _sometimes(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in `one_in` draws; shrinks to False.

    Group extras are drawn for every possible group of every optimizer, so
    at even odds nearly every scenario would have them all, and a backend's
    known defect with one of them would absorb most examples.
    """
    return st.integers(0, one_in - 1).map(lambda i: i == one_in - 1)


@st.composite
def group_extras(draw) -> GroupExtras:
    custom = tuple((k, draw(v)) for k, v in _CUSTOM_KEYS.items() if draw(_sometimes(6)))
    return GroupExtras(draw(_sometimes(4)), custom, draw(_sometimes(10)))


def _group_hparams(name: str, flags: Sequence[str], drawn, extras: GroupExtras):
    hp = dict(drawn)
    if extras.tensor_lr and tensor_lr_problem(name, flags) is None:
        lr = hp.get("lr", constructor_defaults(name).get("lr", 1e-3))
        hp["lr"] = TensorValue(float(lr))
    return tuple(hp.items()) + extras.custom


@dataclass(frozen=True)
class SingleOptimizerBlueprint:
    """One optimizer's choices: class, flags, scheduler, and every possible group's hparams."""

    name: str
    flags: tuple[str, ...]
    scheduler: SchedulerSpec | None
    group_hparams: tuple[tuple[tuple[str, Any], ...], ...]
    group_extras: tuple[GroupExtras, ...]


@dataclass(frozen=True)
class OptimizerBlueprint:
    """Optimizer choices drawn before the model, cut to it by `fit_optimizers`.

    Per possible parameter: ``owner`` (index of the optimizer that takes it),
    ``group`` (its group number) and ``order`` (its sort key inside the
    group: all 0 keeps model order).
    """

    optimizers: tuple[SingleOptimizerBlueprint, ...]
    owner: tuple[int, ...]
    group: tuple[int, ...]
    order: tuple[int, ...]


@st.composite
def single_optimizer_blueprints(draw, device: str = "cpu") -> SingleOptimizerBlueprint:
    """Any optimizer with any flags valid on `device` (`fit_optimizers` fits them to the plan)."""
    name = draw(optimizer_names())
    flags = draw(st.sampled_from(flag_sets(name, device=device)))
    scheduler = draw(schedulers())
    n_groups = 1 if kind_of(name).one_group else MAX_GROUPS
    group_hp, extras = _group_choices(name, n_groups)
    return SingleOptimizerBlueprint(name, flags, scheduler, draw(group_hp), draw(extras))


# The strategies below are built once and reused: Hypothesis validates a strategy
# object the first time it draws from it, so building them anew for every draw
# cost a third of the time of generating (and shrinking) a scenario.  The draws
# are the same either way.


@functools.lru_cache(maxsize=None)
def _group_choices(name: str, n_groups: int) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    """The strategies of `n_groups` groups' hyperparameters of `name`, and of their extras."""
    return st.tuples(*[hparams(name)] * n_groups), st.tuples(*[group_extras()] * n_groups)


@functools.lru_cache(maxsize=None)
def _numbers(n: int, upper: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[st.integers(0, upper - 1)] * n)


@st.composite
def optimizer_blueprints(draw, device: str = "cpu") -> OptimizerBlueprint:
    """A blueprint for the scenario's optimizers on `device`, whatever the plan (see `substitute`)."""
    # Several optimizers about one time in three: a backend's defect with them
    # should not absorb most examples.
    first = draw(single_optimizer_blueprints(device))
    more = []
    if draw(_sometimes(3)):
        more = draw(st.lists(single_optimizer_blueprints(device), min_size=1, max_size=MAX_OPTIMIZERS - 1))
    return OptimizerBlueprint(
        optimizers=(first, *more),
        owner=draw(_numbers(MAX_PARAMS, MAX_OPTIMIZERS)),
        group=draw(_numbers(MAX_PARAMS, MAX_GROUPS)),
        order=draw(_numbers(MAX_PARAMS, MAX_PARAMS)),
    )


def fit_optimizers(
    blueprint: OptimizerBlueprint, model: AnyModelSpec, plan_kind: str | None = None
) -> tuple[OptimizerSpec, ...]:
    """The scenario's optimizers for `model` under `plan_kind`, as the blueprint chose them.

    An optimizer that cannot run under the plan is replaced (`substitute`),
    with torch's default hyperparameters (those drawn were for the other
    class) and the drawn group extras.

    Each parameter goes to its chosen optimizer (a sparse-gradient one to
    SparseAdam if there is one, else SparseAdam would hardly ever get one), or, if that one cannot take
    it (SparseAdam takes only sparse-gradient parameters, Muon only 2-D
    ones), to the first one that can; a parameter no optimizer can take is
    left out of all (it is then simply not optimized).  An optimizer left
    with no parameter is dropped; the result is empty if all are (the caller
    rejects that example).
    """
    fqns = model.param_fqns()
    shapes = model.param_shapes()
    sparse = set(model.sparse_param_fqns())
    bps = tuple(_fit_single(bp, plan_kind) for bp in blueprint.optimizers)
    members: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
    for i, fqn in enumerate(fqns):
        first = blueprint.owner[i % len(blueprint.owner)] % len(bps)
        if fqn in sparse:  # SparseAdam, if there is one, exists for these
            first = next((j for j, bp in enumerate(bps) if kind_of(bp.name).params == "sparse"), first)
        for o in [first] + [j for j in range(len(bps)) if j != first]:
            g = blueprint.group[i % len(blueprint.group)] % len(bps[o].group_hparams)
            hp = _group_hparams(bps[o].name, bps[o].flags, bps[o].group_hparams[g], bps[o].group_extras[g])
            if accepts_param(bps[o].name, bps[o].flags, shapes[fqn], fqn in sparse, hp):
                key = blueprint.order[i % len(blueprint.order)]
                members.setdefault((o, g), []).append((key, i, fqn))
                break
    specs = []
    for o, bp in enumerate(bps):
        if not any(o == owner for owner, _ in members):
            continue
        groups = []
        for g, (drawn, extras) in enumerate(zip(bp.group_hparams, bp.group_extras)):
            params = tuple(fqn for _, _, fqn in sorted(members.get((o, g), [])))
            if params or extras.keep_if_empty:
                groups.append(GroupSpec(params, _group_hparams(bp.name, bp.flags, drawn, extras)))
        scheduler = None if _lr_reaches_zero_under_strong_wolfe(bp.name, groups, bp.scheduler) else bp.scheduler
        specs.append(OptimizerSpec(bp.name, tuple(groups), bp.flags, scheduler))
    return tuple(specs)


def _lr_reaches_zero_under_strong_wolfe(name: str, groups, scheduler: SchedulerSpec | None) -> bool:
    """Whether `scheduler` takes an LBFGS with the strong-Wolfe line search to lr 0,
    where torch's line search divides by zero (T70,
    repro/torch_lbfgs_strong_wolfe_zero_lr.py): such a job cannot train, whatever
    its checkpointing, so the scheduler is left out (fitted away, not rejected:
    no other example moves)."""
    if name != "lbfgs" or scheduler is None:
        return False
    if not any(dict(g.hparams).get("line_search_fn") == "strong_wolfe" for g in groups):
        return False
    args = scheduler.arguments()
    return scheduler.kind == "PolynomialLR" or (scheduler.kind == "CosineAnnealingLR" and not args.get("eta_min"))


def _fit_single(bp: SingleOptimizerBlueprint, plan_kind: str | None) -> SingleOptimizerBlueprint:
    name, flags = substitute(bp.name, bp.flags, plan_kind)
    if name == bp.name:
        return replace(bp, flags=flags)
    n_groups = 1 if kind_of(name).one_group else MAX_GROUPS
    extras = (bp.group_extras * MAX_GROUPS)[:n_groups]
    return replace(bp, name=name, flags=flags, group_hparams=((),) * n_groups, group_extras=extras)


# -- Direct strategies (no blueprint), for suites and third parties composing their own.


@st.composite
def param_groups(draw, fqns: Sequence[str], optimizer: str, max_groups: int = MAX_GROUPS):
    """A partition of `fqns` into 1..max_groups non-empty groups, in model order."""
    assignment = draw(_numbers(len(fqns), max_groups))
    group_hp = draw(st.tuples(*[hparams(optimizer)] * max_groups))
    return partition(fqns, assignment, group_hp)


def partition(fqns: Sequence[str], assignment: Sequence[int], group_hparams: Sequence) -> tuple[GroupSpec, ...]:
    """`fqns` in param groups, in model order: ``fqns[i]`` goes to group ``assignment[i]``
    (an `assignment` longer than `fqns` is cut), which gets ``group_hparams[g]``; groups
    that receive no parameter are left out."""
    assignment = assignment[: len(fqns)]
    return tuple(
        GroupSpec(tuple(f for f, a in zip(fqns, assignment) if a == g), group_hparams[g])
        for g in sorted(set(assignment))
    )


@st.composite
def optimizers(
    draw, model: AnyModelSpec, plan_kind: str | None = None, device: str = "cpu"
) -> tuple[OptimizerSpec, ...]:
    """The optimizers of a scenario over `model` on `device` (rejects the rare blueprint that fits no parameter)."""
    from hypothesis import assume

    specs = fit_optimizers(draw(optimizer_blueprints(device)), model, plan_kind)
    assume(specs)
    return specs
