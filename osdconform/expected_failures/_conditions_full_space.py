"""Named conditions of the entries found once every suite drew the full space (issue 18).

Most are about torch-dsd's zero-gradient step; `loads` says which
property steps load a checkpoint.

Before a get of an optimizer without state, and before every set, torch-dsd
gives the optimizer state by stepping it once with a zero gradient for every
parameter that requires grad and ``lr`` 0 (``_init_optim_state``).  The core
space draws SGD, Adam and AdamW only, so the first entries named those; the
full space draws every optimizer of ``torch.optim``, and each of these
conditions says, in words a reviewer can check, which of them the step
changes and how.  `loads` and `gets` say which property steps load
a checkpoint and which get one, so an entry about a load does not claim the
steps that only get or save, nor one about a get the loading half of reshard.

tests/cover/test_full_space_conditions.py pins each to the examples that found
it and to the near misses that pass.
"""

from __future__ import annotations

import math
from typing import Any

from ._training import (
    dsd_saved_state,
    fsdp1_unit_partly_in_state,
)

#: The property steps that load a checkpoint into fresh objects (`properties`).
LOADING_STEPS = frozenset({
    "roundtrip", "in_flight_training", "in_flight_loading", "reshard_load", "resume", "schedulers", "flatten", "types",
    "isolation_after_set", "errors", "cross_device_load",
})

#: The property steps that get (or save) a source's state dict: all but the
#: loading halves of the two-world properties.
GETTING_STEPS = frozenset({
    "roundtrip", "in_flight_training", "in_flight_loading", "fidelity", "reshard_save", "resume", "schedulers", "flatten", "types",
    "isolation_after_set", "isolation_after_get", "side_effects", "errors", "cross_device_save",
})

#: Optimizers whose per-parameter state counts steps (``step``): the
#: zero-gradient step counts as one.  Adagrad is not among the affected: its
#: constructor gives it state, so torch-dsd never steps it.
COUNTS_STEPS = frozenset({
    "adam", "adamw", "adamax", "nadam", "radam", "adadelta", "rmsprop", "rprop", "asgd", "adafactor",
})


def loads(step: Any) -> bool:
    """The property step loads a checkpoint (a set, or a load from storage)."""
    return step in LOADING_STEPS


def gets(step: Any) -> bool:
    """The property step gets (or saves) a source's state dict."""
    return step in GETTING_STEPS


def init_step_counts_a_step(s: Any) -> bool:
    """A checkpoint taken before the first step holds a step count of 1 that
    the zero-gradient step of torch-dsd's get made: some optimizer that counts
    steps has parameters the get gives state."""
    return s.steps == 0 and any(
        opt.name in COUNTS_STEPS and dsd_saved_state(s, opt) for opt in s.optimizers
    )


def init_step_builds_a_wrong_momentum(s: Any) -> bool:
    """A checkpoint taken before the first step holds the momentum buffer of
    the zero-gradient step (``weight_decay * param``, or zero), where SGD
    would start it from the first gradient: visible once the group has
    momentum and dampening or weight decay."""
    if s.steps != 0:
        return False
    saved = {f for opt in s.optimizers if opt.name == "sgd" for f in dsd_saved_state(s, opt)}
    for opt in s.optimizers:
        if opt.name != "sgd":
            continue
        for g in opt.groups:
            h = opt.effective_hparams(g)
            if opt.group_keeps_state(g) and (h.get("dampening") or h.get("weight_decay")) and saved & set(g.params):
                return True
    return False


def init_step_gives_state_to_unused_params(s: Any) -> bool:
    """A checkpoint taken before the first step holds state for a parameter
    that no later step gives a gradient (an unused branch): the zero-gradient
    step gave it state, where the uninterrupted run has none."""
    if s.steps != 0:
        return False
    unused = set(s.model.unused_param_fqns())
    return any(f in unused for opt in s.optimizers for f in dsd_saved_state(s, opt))


def fsdp1_param_empty_on_a_rank(s: Any, optimizer: str) -> bool:
    """Under FSDP1 (sharded, original parameters), a parameter of an
    `optimizer` optimizer that is not frozen at build has no element on some
    rank: each unit's parameters (in registration order) are flattened, padded
    to a multiple of the world size and cut into equal chunks, so a parameter
    whose range misses a rank's chunk is an empty view there.  The
    zero-gradient step gives that empty view a gradient, which training never
    does."""
    if not ("plan:fsdp1" in s.features and s.world_size > 1 and s.plan.use_orig_params):
        return False
    if s.plan.sharding_strategy not in ("FULL_SHARD", "SHARD_GRAD_OP"):
        return False
    shapes = s.model.param_shapes()
    frozen = s.model.frozen_after()
    mine = {f for opt in s.optimizers if opt.name == optimizer for f in opt.param_fqns() if frozen.get(f) != 0}
    units: dict[str, list[str]] = {}
    for fqn in s.model.param_fqns():
        units.setdefault(s.plan.fsdp_unit(fqn), []).append(fqn)
    for fqns in units.values():
        sizes = [math.prod(shapes[f]) for f in fqns]
        chunk = -(-sum(sizes) // s.world_size)
        start = 0
        for fqn, size in zip(fqns, sizes):
            stop = start + size
            if fqn in mine and any(stop <= r * chunk or start >= (r + 1) * chunk for r in range(s.world_size)):
                return True
            start = stop
    return False


def dtensor_zero_d_param_with_state(s: Any) -> bool:
    """Under the dtensor plan (every parameter a DTensor), a 0-d parameter
    that torch-dsd's get returns state for: a full set turns its state into
    plain tensors (``_distribute_state_dict`` keeps every 0-d value as it is)."""
    if s.plan.kind != "dtensor":
        return False
    shapes = s.model.param_shapes()
    return any(shapes[f] == () for opt in s.optimizers for f in dsd_saved_state(s, opt))


def dsd_strict_check_names_another_param(s: Any, fault: Any) -> bool:
    """The errors suite's fault leaves state in the checkpoint (a fault that
    needs a state tensor strikes as ``unknown_fqn`` where there is none, so
    these three always do), and some optimizer parameter requiring grad has
    none (plain SGD, unused): the strict check of a torch-dsd set then
    refuses the checkpoint by naming that parameter, not the broken key."""
    if fault is None or fault.kind not in ("shape", "missing_state_key", "unknown_fqn"):
        return False
    return bool(_trainable_params(s) - _saved(s))


def dsd_set_fails_after_an_optimizer_loaded(s: Any, fault: Any) -> bool:
    """A torch-dsd set over several optimizers loads them one after another
    and checks each only when its turn comes: the first optimizer the strict
    check refuses (a parameter requiring grad without state in a checkpoint
    that holds some, the ``missing_fqn`` fault's dropped one included) is
    not the first optimizer, so those before it are already loaded."""
    if fault is None or len(s.optimizers) < 2:
        return False
    if fault.kind not in ("shape", "missing_state_key", "unknown_fqn", "missing_fqn"):
        return False  # another class, or damaged files: refused before any optimizer loads
    dropped = None
    if fault.kind == "missing_fqn":
        fqns = [f for opt in s.optimizers for g in opt.groups for f in g.params]
        dropped = fqns[fault.pick % len(fqns)] if fqns else None
    saved = _saved(s) - {dropped}
    if not saved and fault.kind not in ("shape", "missing_state_key", "unknown_fqn"):
        return False  # no state at all: nothing is checked
    frozen = s.model.frozen_after()
    for i, opt in enumerate(s.optimizers):
        if any(frozen.get(f) != 0 and f not in saved for f in opt.param_fqns()):
            return i > 0
    return False


def _saved(s: Any) -> set[str]:
    return set().union(*(dsd_saved_state(s, opt) for opt in s.optimizers))


def _trainable_params(s: Any) -> set[str]:
    frozen = s.model.frozen_after()
    return {f for opt in s.optimizers for f in opt.param_fqns() if frozen.get(f) != 0}


def missing_fqn_leaves_no_state(s: Any, fault: Any) -> bool:
    """The errors suite's ``missing_fqn`` fault drops the only parameter the
    checkpoint holds state for, or the checkpoint holds none, or drops a
    parameter frozen at the load (at build: the errors suite's target trains
    one step, before any later freeze): a full torch-dsd set, which checks for
    missing parameters only through the state of parameters that require grad,
    then loads it silently."""
    if fault is None or fault.kind != "missing_fqn":
        return False
    fqns = [f for opt in s.optimizers for g in opt.groups for f in g.params]
    if not fqns:
        return False
    dropped = fqns[fault.pick % len(fqns)]
    saved = set().union(*(dsd_saved_state(s, opt) for opt in s.optimizers))
    return saved <= {dropped} or s.model.frozen_after().get(dropped) == 0


def fsdp1_unit_of_one_optimizer_partly_in_state(s: Any) -> bool:
    """No FSDP1 unit split across optimizers, and a unit whose parameters
    are only partly in its optimizer's state (`fsdp1_unit_partly_in_state`):
    FSDP1's get refuses it ("... is not in the optimizer state")."""
    return "fsdp1:unit split across optimizers" not in s.features and fsdp1_unit_partly_in_state(s)


#: The conditions above, by name (`_conditions.HELPERS` adds them).
FULL_SPACE = (
    fsdp1_unit_of_one_optimizer_partly_in_state,
    missing_fqn_leaves_no_state,
    dsd_strict_check_names_another_param,
    dsd_set_fails_after_an_optimizer_loaded,
    loads,
    gets,
    init_step_counts_a_step,
    init_step_builds_a_wrong_momentum,
    init_step_gives_state_to_unused_params,
    fsdp1_param_empty_on_a_rank,
    dtensor_zero_d_param_with_state,
)
