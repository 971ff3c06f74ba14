"""Named conditions that expected-failure predicates call (`_entries` gives them these).

Each names one torch behaviour a shipped entry depends on, in words a
reviewer can check, built from the pieces of `_training` (which parameters
got a gradient, hold state, what torch-dsd's get saves, ...).  `HELPERS` is
every name a predicate may call.
"""

from __future__ import annotations

import math
from typing import Any

from ._conditions_fsdp1 import FSDP1
from ._conditions_full_space import FULL_SPACE
from ._conditions_grad_dtype import GRAD_DTYPE
from ._conditions_lifecycle import LIFECYCLE
from ._conditions_loaders import LOADERS
from ._conditions_pipeline import PIPELINE
from ._conditions_wrapped import WRAPPED
from ._training import (
    dsd_saved_state,
    dsd_set_misses_state,
    fsdp1_offload_mixes_state,
    fsdp1_unit_partly_in_state,
    got_grad,
    state_after_training,
    stateful_params,
    trainable_at_end,
    uneven_strided_params,
)

# -- Named conditions of the shipped entries ---------------------------------
# Each replaces an inline predicate that was too long to review on one line;
# tests/cover/test_xfail_predicates.py keeps the old expressions as their
# spec and checks that each gives the same answer on drawn scenarios.


def adam_or_adamw(s: Any) -> bool:
    """Some optimizer is Adam or AdamW, whose ``step`` entry is a tensor that
    torch passes through loads and that a zero-gradient step sets to 1."""
    return "optimizer:adam" in s.features or "optimizer:adamw" in s.features


def sgd_dampening_or_weight_decay(s: Any) -> bool:
    """Some SGD group has dampening or weight decay: then the momentum buffer a
    zero-gradient step creates (``weight_decay * param``, or zero) is not the
    one the first real step would build from its gradient."""
    return any(
        k in ("dampening", "weight_decay") and v
        for opt in s.optimizers if opt.name == "sgd" for g in opt.groups for k, v in g.hparams
    )


def tuple_hparams_outside_fsdp1(s: Any) -> bool:
    """A tuple hyperparameter (Adam's ``betas``, ...) and no FSDP1 plan: a full
    torch-dsd set then writes it back as a list (over FSDP1 the load goes
    through FSDP's own ``optim_state_dict_to_load``, which keeps tuples)."""
    return "tuple hyperparameter" in s.features and "plan:fsdp1" not in s.features


def stateless_optimizer_without_state(s: Any) -> bool:
    """An optimizer that keeps no state (plain SGD), in a scenario whose
    optimizers hold none at the get (not stepped yet, or no stateful group):
    a full torch-dsd set then finds no state tensor to take its device from."""
    return "no-state optimizer" in s.features and ("no state yet" in s.features or "stateful group" not in s.features)


def empty_group_dsd_refuses(s: Any) -> bool:
    """An empty param group beside another optimizer or another empty group:
    ``set_optimizer_state_dict`` accepts one empty group of a single optimizer only."""
    return "empty group" in s.features and ("several optimizers" in s.features or "several empty groups" in s.features)


def dsd_set_misses_stateless_group_params(s: Any) -> bool:
    """A parameter of a group without state (plain SGD) that a strict torch-dsd
    set demands state for (`dsd_set_misses_state`)."""
    missed = dsd_set_misses_state(s)
    return any(
        f in missed for opt in s.optimizers for g in opt.groups if not opt.group_keeps_state(g) for f in g.params
    )


def dsd_set_misses_stateful_params(s: Any) -> bool:
    """A parameter of a stateful group that a strict torch-dsd set demands state
    for (`dsd_set_misses_state`): unused, or frozen when get created state."""
    missed = dsd_set_misses_state(s)
    return any(f in missed for opt in s.optimizers for f in stateful_params(opt))


def optimizer_without_state_with_a_dim(s: Any) -> bool:
    """Some optimizer whose stateful groups hold no parameter with a dim that is
    trainable at build: after the zero-gradient step of a full torch-dsd set
    it has no state tensor with ``dim() > 0`` to take the device from."""
    frozen = s.model.frozen_after()
    shapes = s.model.param_shapes()
    return any(
        not any(
            shapes[f] and frozen.get(f) != 0 for g in opt.groups if opt.group_keeps_state(g) for f in g.params
        )
        for opt in s.optimizers
    )


def adagrad_holds_frozen_params(s: Any) -> bool:
    """An Adagrad optimizer over a parameter frozen at build: its constructor
    gives that parameter state, which torch-dsd's set drops (not requiring grad)."""
    frozen = s.model.frozen_after()
    return any(frozen.get(f) == 0 for opt in s.optimizers if opt.name == "adagrad" for f in opt.param_fqns())


def fsdp1_unit_mixes_state_keys(s: Any) -> bool:
    """Some sharded FSDP1 unit (world > 1, not NO_SHARD) whose trainable-at-build
    parameters of one stateful optimizer (not SGD) carry different optional
    state keys (``amsgrad``, ``centered``, ... in one group only): FSDP's
    ``_allgather_orig_param_states`` then miscounts the flat buffer."""
    if "plan:fsdp1" not in s.features or s.world_size <= 1 or s.plan.sharding_strategy == "NO_SHARD":
        return False
    frozen = s.model.frozen_after()
    for opt in s.optimizers:
        if opt.name == "sgd":
            continue
        for u in {s.plan.fsdp_unit(f) for f in opt.param_fqns()}:
            keys = {
                opt.optional_state(g) for g in opt.groups for f in g.params
                if s.plan.fsdp_unit(f) == u and frozen.get(f) != 0
            }
            if len(keys) > 1:
                return True
    return False


def dsd_saves_state(s: Any) -> bool:
    """torch-dsd's get returns state for some optimizer (`dsd_saved_state`)."""
    return any(dsd_saved_state(s, opt) for opt in s.optimizers)


def dsd_saves_uneven_strided_state(s: Any) -> bool:
    """torch-dsd's get saves state for a parameter whose FSDP2-over-TP strided
    shard is uneven (`uneven_strided_params`), which a full set cannot re-shard."""
    uneven = uneven_strided_params(s)
    return any(f in uneven for opt in s.optimizers for f in dsd_saved_state(s, opt))


def dsd_get_creates_state(s: Any) -> bool:
    """Some optimizer without state after training for which torch-dsd's get
    creates state by its zero-gradient step (`dsd_saved_state`)."""
    return any(not state_after_training(s, opt) and dsd_saved_state(s, opt) for opt in s.optimizers)


def lbfgs_trains_a_param(s: Any) -> bool:
    """An LBFGS optimizer over a used parameter not frozen at build: after a
    step its history lists are state the flat form cannot carry."""
    unused = s.model.unused_param_fqns()
    frozen = s.model.frozen_after()
    return any(
        f not in unused and frozen.get(f) != 0 for opt in s.optimizers if opt.name == "lbfgs" for f in opt.param_fqns()
    )


def load_casts_scalar_state(s: Any) -> bool:
    """NAdam's ``mu_product`` (ASGD's ``eta`` and ``mu``), float32 whatever the
    parameter, exists for a non-float32 parameter, so ``Optimizer.load_state_dict``
    casts it to the parameter's dtype.

    The state exists for a parameter not frozen at build when it got a
    gradient, when no step ran yet (get's zero-gradient step creates it), or,
    for a parameter trainable at the end, when the optimizer has no used
    trainable parameter at all (the zero-gradient step again).
    """
    unused = s.model.unused_param_fqns()
    frozen = s.model.frozen_after()
    dtypes = s.model.param_dtypes()
    for opt in s.optimizers:
        if opt.name not in ("nadam", "asgd"):
            continue
        idle = not [g for g in opt.param_fqns() if g not in unused and frozen.get(g) != 0]
        for f in opt.param_fqns():
            if dtypes[f] != "float32" and frozen.get(f) != 0 and (
                s.steps == 0 or f not in unused or (frozen.get(f, s.steps) >= s.steps and idle)
            ):
                return True
    return False


def dsd_set_creates_state_the_checkpoint_lacks(s: Any) -> bool:
    """Training left no state at all although stateful groups exist: after a
    step, some parameter trains at the end and is used, no stateful group holds
    a used parameter trainable at build, yet one holds an unused such
    parameter; torch-dsd's set then gives the fresh optimizer state by its
    zero-gradient step that the checkpoint does not hold."""
    unused = s.model.unused_param_fqns()
    frozen = s.model.frozen_after()

    params = [f for opt in s.optimizers for g in opt.groups for f in g.params]
    in_state = [f for opt in s.optimizers for f in stateful_params(opt) if frozen.get(f) != 0]
    return (
        s.steps >= 1
        and any(f not in unused and frozen.get(f, s.steps) >= s.steps for f in params)
        and not any(f not in unused for f in in_state)
        and any(f in unused for f in in_state)
    )



def two_weights_or_biases_in_a_group(s: Any) -> bool:
    """Some param group holds two weights or two biases: state of the same rank
    in one group, so a missing entry of one can be noticed from its peer."""
    return any(
        sum(f.endswith(end) for f in g.params) > 1
        for opt in s.optimizers for g in opt.groups for end in ("weight", "bias")
    )


def offload_mixes_trained_state(s: Any) -> bool:
    """FSDP1's ``offload_to_cpu`` mixes up some optimizer's trained state
    (`fsdp1_offload_mixes_state` over `state_after_training`)."""
    return any(fsdp1_offload_mixes_state(s, opt, state_after_training(s, opt)) for opt in s.optimizers)


def offload_mixes_dsd_saved_state(s: Any) -> bool:
    """The same over what torch-dsd's get saves (`dsd_saved_state`)."""
    return any(fsdp1_offload_mixes_state(s, opt, dsd_saved_state(s, opt)) for opt in s.optimizers)


#: The named conditions of the shipped entries (each a whole, documented clause).
def groups_not_in_module_order(s: Any) -> bool:
    """The optimizers' parameters, group after group, are not the model's parameters in
    their order: state keyed by index, re-keyed by ``module.parameters()``'s order (as
    FSDP's ``rekey_optim_state_dict`` does without the optimizer), lands on other parameters."""
    order = [f for opt in s.optimizers for g in opt.groups for f in g.params]
    return order != list(s.model.param_shapes())


NAMED = (
    adam_or_adamw,
    sgd_dampening_or_weight_decay,
    tuple_hparams_outside_fsdp1,
    stateless_optimizer_without_state,
    empty_group_dsd_refuses,
    dsd_set_misses_stateless_group_params,
    dsd_set_misses_stateful_params,
    optimizer_without_state_with_a_dim,
    adagrad_holds_frozen_params,
    fsdp1_unit_mixes_state_keys,
    dsd_saves_state,
    dsd_saves_uneven_strided_state,
    dsd_get_creates_state,
    lbfgs_trains_a_param,
    load_casts_scalar_state,
    dsd_set_creates_state_the_checkpoint_lacks,
    two_weights_or_biases_in_a_group,
    offload_mixes_trained_state,
    offload_mixes_dsd_saved_state,
    groups_not_in_module_order,
)


# -- Conditions of the entries found on older torch (issue 15) ---------------
# Written as named conditions from the start (no inline predicate before them);
# tests/cover/test_release_conditions.py checks each on the scenarios that found it.

def checkpoint_lacks_state_of_params_trainable_at_build(s: Any) -> bool:
    """Some optimizer's checkpoint holds no state at all (its stateful groups'
    parameters were frozen at build, or never used and frozen by the end of
    training) although one of those parameters is trainable at build: the
    fresh optimizer a torch-dsd set loads into gives it state by its
    zero-gradient step, and the set keeps it."""
    frozen = s.model.frozen_after()
    return any(
        not dsd_saved_state(s, opt) and any(frozen.get(f) != 0 for f in stateful_params(opt))
        for opt in s.optimizers
    )



def fsdp1_adagrad_param_empty_on_a_rank(s: Any) -> bool:
    """Under FSDP1 (sharded, original parameters), an Adagrad parameter has no
    element on some rank: each unit's parameters (in registration order) are
    flattened, padded to a multiple of the world size and cut into equal
    chunks, so a parameter whose range misses a rank's chunk is an empty view
    there (a one-element Embedding over three ranks)."""
    if not ("plan:fsdp1" in s.features and s.world_size > 1 and s.plan.use_orig_params):
        return False
    if s.plan.sharding_strategy not in ("FULL_SHARD", "SHARD_GRAD_OP"):
        return False
    shapes = s.model.param_shapes()
    adagrad = {f for opt in s.optimizers if opt.name == "adagrad" for f in opt.param_fqns()}
    units: dict[str, list[str]] = {}
    for fqn in s.model.param_fqns():
        units.setdefault(s.plan.fsdp_unit(fqn), []).append(fqn)
    for fqns in units.values():
        sizes = [math.prod(shapes[f]) for f in fqns]
        chunk = -(-sum(sizes) // s.world_size)
        start = 0
        for fqn, size in zip(fqns, sizes):
            stop = start + size
            if fqn in adagrad and any(stop <= r * chunk or start >= (r + 1) * chunk for r in range(s.world_size)):
                return True
            start = stop
    return False


def dsd_split_maps_an_empty_group_wrongly(s: Any) -> bool:
    """An empty param group before others, and a checkpoint that holds state:
    ``_split_optim_state_dict`` maps the empty group to the last loaded group
    (a reused loop variable).  An OSD without any state it returns unchanged
    (``all()`` of its empty state keys is true), so then nothing is lost."""
    return "empty group before others" in s.features and dsd_saves_state(s)


#: The conditions above, by name (besides `NAMED`).
RELEASES = (
    checkpoint_lacks_state_of_params_trainable_at_build,
    fsdp1_adagrad_param_empty_on_a_rank,
    dsd_split_maps_an_empty_group_wrongly,
)

def missing_fqn_drops_a_group_head(s: Any, pick: int) -> bool:
    """Whether the ``missing_fqn`` fault with this ``pick`` drops the first
    parameter of its param group (`properties._errors`: the pick-th FQN of all
    optimizers' groups, in order): a loader that reads a group's
    hyperparameters through its first parameter only (torchtitan's) notices
    just that one."""
    fqns = [f for opt in s.optimizers for g in opt.groups for f in g.params]
    if not fqns:
        return False
    dropped = fqns[pick % len(fqns)]
    return any(g.params[:1] == (dropped,) for opt in s.optimizers for g in opt.groups)


#: What predicates see besides ``s``, ``o``, ``step`` and ``fault``.
HELPERS = {
    f.__name__: f
    for f in (
        got_grad,
        trainable_at_end,
        stateful_params,
        state_after_training,
        dsd_saved_state,
        dsd_set_misses_state,
        uneven_strided_params,
        fsdp1_offload_mixes_state,
        fsdp1_unit_partly_in_state,
        missing_fqn_drops_a_group_head,
    )
} | {f.__name__: f for f in NAMED + RELEASES + FULL_SPACE + LOADERS + FSDP1 + WRAPPED + LIFECYCLE + GRAD_DTYPE + PIPELINE}
