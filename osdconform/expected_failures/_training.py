"""What training leaves, worked out from a scenario's specs: the pieces of the named conditions.

A defect often shows only when some parameter has, or lacks, optimizer state
at a given moment, which a one-line predicate cannot spell out readably.
These functions work it out from the scenario's specs alone (no torch run):
which parameters got a gradient, which still require grad after training,
which hold state in the trained optimizer, and, for torch-dsd, what its get
returns and what a strict set then misses.  Predicates may call them, and
the named conditions of `_conditions` are built from them.  Each says which
torch behaviour it models; `tests/cover/test_xfail_predicates.py` checks them
against real optimizers where torch can tell.
"""

from __future__ import annotations

from typing import Any

# The entries of each optimizer's state that have the parameter's shape
# (besides `OptimizerSpec.optional_state`'s): the reference's one table.
from ..reference._param_shaped import ALWAYS as ALWAYS_PARAM_SHAPED


def got_grad(s: Any) -> frozenset[str]:
    """Parameters that received a gradient in some training step.

    Used, not frozen at build, and at least one step (a parameter frozen
    after k >= 1 steps got one at step 0).  Under FSDP1 an unused parameter
    gets a zero gradient too when a parameter of its unit got one (FSDP1
    computes gradients per flat parameter; the golden twin does the same).
    """
    if s.steps == 0:
        return frozenset()
    frozen = s.model.frozen_after()
    unused = set(s.model.unused_param_fqns())
    fqns = [f for f in s.model.param_fqns() if frozen.get(f) != 0]
    got = {f for f in fqns if f not in unused}
    if s.plan.kind == "fsdp1":
        units = {s.plan.fsdp_unit(f) for f in got}
        got |= {f for f in fqns if s.plan.fsdp_unit(f) in units}
    return frozenset(got)


def trainable_at_end(s: Any) -> frozenset[str]:
    """Parameters that still require grad after training (one frozen after k
    steps stops before step k, so after ``s.steps`` steps only if k < steps)."""
    frozen = s.model.frozen_after()
    return frozenset(
        f for f in s.model.param_fqns() if frozen.get(f) != 0 and frozen.get(f, s.steps) >= s.steps
    )


def stateful_params(opt: Any) -> tuple[str, ...]:
    """Parameters of `opt`'s groups that keep state (all but plain SGD's)."""
    return tuple(f for g in opt.groups if opt.group_keeps_state(g) for f in g.params)


def state_after_training(s: Any, opt: Any) -> frozenset[str]:
    """Parameters `opt` holds state for after training.

    Adagrad gives every parameter state in its constructor; LBFGS keeps all
    its state under its first parameter once it has stepped; the others
    create a parameter's state at its first gradient.
    """
    if opt.name == "adagrad":
        return frozenset(opt.param_fqns())
    if opt.name == "lbfgs":
        return frozenset(opt.param_fqns()[:1]) if s.steps else frozenset()
    got = got_grad(s)
    return frozenset(f for f in stateful_params(opt) if f in got)


def dsd_saved_state(s: Any, opt: Any) -> frozenset[str]:
    """Parameters torch-dsd's get returns state for: the trained state, or, for an
    optimizer without any, what its zero-gradient step (``_init_optim_state``)
    creates: the parameters of stateful groups that require grad."""
    trained = state_after_training(s, opt)
    if trained:
        return trained
    trainable = trainable_at_end(s)
    return frozenset(f for f in stateful_params(opt) if f in trainable)


def dsd_set_misses_state(s: Any) -> frozenset[str]:
    """Parameters a strict, nested-form torch-dsd set finds no saved state for.

    ``_split_optim_state_dict`` demands state for every parameter that
    requires grad in the objects loaded into (fresh ones: all but those
    frozen at build), unless the checkpoint holds no state at all.
    """
    saved = [dsd_saved_state(s, opt) for opt in s.optimizers]
    if not any(saved):
        return frozenset()
    frozen = s.model.frozen_after()
    return frozenset(
        f for opt, state in zip(s.optimizers, saved) for f in opt.param_fqns() if frozen.get(f) != 0 and f not in state
    )


def fsdp1_unit_partly_in_state(s: Any, saved_state: Any = dsd_saved_state) -> bool:
    """Whether FSDP1's optimizer-state get refuses an optimizer of `s`.

    ``FSDP.optim_state_dict`` (under torch-dsd's get too) raises "... is
    not in the optimizer state" when an optimizer holds state for a
    parameter of an FSDP unit but not for another parameter of that unit
    that requires grad (``_optim_utils``: every parameter of the unit, in
    any optimizer or none, frozen ones excepted).  `saved_state(s, opt)`
    names what the optimizer holds at the get (torch-dsd's own get gives a
    stateless optimizer state first: `dsd_saved_state`).
    """
    if s.plan.kind != "fsdp1":
        return False
    trainable = trainable_at_end(s)
    units: dict[str, set[str]] = {}
    for f in s.model.param_fqns():
        units.setdefault(s.plan.fsdp_unit(f), set()).add(f)
    for opt in s.optimizers:
        saved = saved_state(s, opt)
        for f in saved:
            if any(g in trainable and g not in saved for g in units[s.plan.fsdp_unit(f)]):
                return True
    return False



#: Optimizers whose ``weight_decay`` is added to the gradient (unless
#: ``decoupled_weight_decay``), so that a parameter without a gradient of its
#: own still steps with a non-zero one.
_GRAD_WEIGHT_DECAY = ("adam", "nadam", "radam", "adamax", "adadelta", "rmsprop")


def fsdp1_offload_mixes_state(s: Any, opt: Any, saved: frozenset[str]) -> bool:
    """Whether FSDP1's offloaded full OSD shows `opt`'s state entries mixed up.

    On a CPU model with ``offload_to_cpu``, FSDP1 gathers every state entry
    of a sharded unit into one reused buffer and returns views of it without
    a copy (``_gather_all_orig_param_state``), so each parameter's entries
    all hold the values of the last one gathered.  That shows when FSDP1
    really shards (world > 1, not NO_SHARD) and some parameter of `saved`
    has two entries of its shape whose values differ: after a real gradient;
    with Adamax (``exp_inf`` starts at ``eps``); with weight decay added to
    a zero gradient; with Rprop after a real step (``step_size`` is ``lr``,
    ``prev`` 0).  A zero gradient leaves the other optimizers' entries all 0.
    """
    if s.plan.kind != "fsdp1" or s.world_size == 1 or s.plan.sharding_strategy == "NO_SHARD":
        return False
    got_real_grad = got_grad(s) - set(s.model.unused_param_fqns())
    trained = state_after_training(s, opt)
    for group in opt.groups:
        entries = set(ALWAYS_PARAM_SHAPED.get(opt.name, ())) | opt.optional_state(group)
        if len(entries) < 2:
            continue
        h = opt.effective_hparams(group)
        grad_decay = (
            opt.name in _GRAD_WEIGHT_DECAY and bool(h.get("weight_decay")) and not h.get("decoupled_weight_decay")
        )
        for f in group.params:
            if f in saved and (
                f in got_real_grad or opt.name == "adamax" or grad_decay or (opt.name == "rprop" and f in trained)
            ):
                return True
    return False


def uneven_strided_params(s: Any) -> frozenset[str]:
    """Parameters whose FSDP2-over-TP layout is a strided shard with unequal
    pieces (`scenario._refusals.uneven_strided_params`)."""
    from ..scenario._refusals import uneven_strided_params as fn

    return fn(s.plan, s.model, s.world_size)
