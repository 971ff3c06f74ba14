"""Named conditions of FSDP1's sharding in the full space (issue 18): what lies on each rank.

FSDP1 flattens each unit's parameters into one flat parameter and gives each
rank an equal piece of it, so which parameters a rank holds elements of,
whether its view of one is empty (no gradient), and whether its state
entries are ShardedTensors all follow from the unit's layout.  Its own get
and load (fsdp1.txt, fsdp1-local.txt) and torch-dsd's and torch-dcp's paths
over it (torch-dcp.txt) fail where that layout meets an idle rank or a mix
of state keys.  `_conditions_loaders` holds the other loaders' conditions;
`_conditions.HELPERS` gives predicates both.
"""

from __future__ import annotations

from typing import Any

from ._conditions_loaders import dcp_saved_state, dcp_template_state
from ._training import fsdp1_unit_partly_in_state, got_grad, state_after_training, stateful_params, trainable_at_end


def fsdp1_load_keeps_caller_tensors(s: Any) -> bool:
    """After FSDP1's own load (``FSDP.optim_state_dict_to_load`` and
    ``Optimizer.load_state_dict``) the optimizer still holds tensors of the
    dict it was given: in a world of 1 every state tensor (FSDP1 shards
    nothing there), in any world the ``step`` tensor of every optimizer but
    SGD (the others all count steps in a tensor).  It shows where the
    checkpoint holds state (`state_after_training`: FSDP1's get gives an
    optimizer none of its own) for such an optimizer."""
    return any(
        state_after_training(s, opt) and (s.world_size == 1 or opt.name != "sgd") for opt in s.optimizers
    )



def fsdp1_unit_mixes_trained_state_keys(s: Any) -> bool:
    """FSDP1's own get (no zero-gradient step) of a sharded unit (world > 1,
    not NO_SHARD) whose parameters with trained state
    (`state_after_training`) in one optimizer (not SGD) keep different
    optional state keys (``amsgrad``, ``centered``, ... in one group only):
    ``_allgather_orig_param_states`` then miscounts the flat buffer (the
    torch-dsd entry's `fsdp1_unit_mixes_state_keys`, which counts the state
    torch-dsd's zero-gradient step creates as well)."""
    if s.plan.kind != "fsdp1" or s.world_size <= 1 or s.plan.sharding_strategy == "NO_SHARD":
        return False
    for opt in s.optimizers:
        if opt.name == "sgd":
            continue
        trained = state_after_training(s, opt)
        keys: dict[str, set[frozenset[str]]] = {}
        for g in opt.groups:
            for f in g.params:
                if f in trained:
                    keys.setdefault(s.plan.fsdp_unit(f), set()).add(opt.optional_state(g))
        if any(len(k) > 1 for k in keys.values()):
            return True
    return False


def dcp_async_save_meets_sharded_tensor(s: Any) -> bool:
    """torch-dcp's save holds a ShardedTensor: FSDP1 shards across ranks
    (FULL_SHARD or SHARD_GRAD_OP at world > 1; HYBRID_SHARD's device mesh
    makes DTensors, NO_SHARD and world 1 whole tensors) and the save writes
    state for some parameter (`dcp_saved_state`; every entry with a dim is a
    ShardedTensor).  ``dcp.async_save`` stages the dict with
    ``deepcopy_with_tensor_offload``, which calls ``data_ptr()`` on it, and
    ShardedTensor refuses that."""
    if s.plan.kind != "fsdp1" or s.world_size == 1:
        return False
    if s.plan.sharding_strategy not in ("FULL_SHARD", "SHARD_GRAD_OP"):
        return False
    shapes = s.model.param_shapes()
    return any(shapes[f] for opt in s.optimizers for f in dcp_saved_state(s, opt))


def dcp_fsdp1_template_partly_in_state(s: Any) -> bool:
    """The get that makes torch-dcp's load template over FSDP1 refuses the
    fresh target (`fsdp1_unit_partly_in_state` of what its zero-gradient step
    gives state, `dcp_template_state`, among the parameters not frozen at
    build): a plain SGD group beside a momentum group in one unit."""
    return fsdp1_unit_partly_in_state(s.replace(steps=0), dcp_template_state)


#: Bytes per element of the scenarios' dtypes (FSDP1's alignment padding).
_DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2}


def fsdp1_params_on_ranks(s: Any) -> list[frozenset[str]]:
    """Under FSDP1 sharding (FULL_SHARD, SHARD_GRAD_OP; HYBRID_SHARD within
    its shard group), the parameters with an element in each shard rank's
    piece of their unit's flat parameter (an empty list for other plans).

    A unit's parameters are flattened in registration order, each but the
    first padded to start at a 16-byte boundary (``use_orig_params``, which
    the space always sets: ``_get_aligned_numel``), the total padded to a
    multiple of the shard group's size and cut into equal pieces; a
    parameter whose range misses a rank's piece is an empty view there, and
    only non-empty views get a gradient."""
    if s.plan.kind != "fsdp1" or s.plan.sharding_strategy == "NO_SHARD":
        return []
    ranks = s.plan.mesh_shape(s.world_size)[-1]
    if ranks <= 1:
        return []
    shapes = s.model.param_shapes()
    dtypes = s.model.param_dtypes()
    units: dict[str, list[str]] = {}
    for fqn in s.model.param_fqns():
        units.setdefault(s.plan.fsdp_unit(fqn), []).append(fqn)
    on: list[set[str]] = [set() for _ in range(ranks)]
    for fqns in units.values():
        align = 16 // _DTYPE_BYTES[dtypes[fqns[0]]]
        ranges, total = [], 0
        for fqn in fqns:
            if total % align:
                total += align - total % align
            size = 1
            for d in shapes[fqn]:
                size *= d
            ranges.append((fqn, total, total + size))
            total += size
        piece = -(-total // ranks)
        for r in range(ranks):
            on[r] |= {f for f, start, stop in ranges if start < (r + 1) * piece and stop > r * piece}
    return [frozenset(x) for x in on]


def dsd_get_inits_some_ranks_over_fsdp1(s: Any) -> bool:
    """torch-dsd's get (torch-dcp's save) over FSDP1 runs its zero-gradient
    step on some ranks only, and so gives them state the others lack.

    ``_init_optim_state`` decides per rank: a rank whose optimizer holds no
    state and whose parameters hold no gradient steps it.  Under FSDP1 a
    rank whose pieces hold no element of any parameter that trained (it
    only has empty views of them, which get no gradient) is such a rank
    (`fsdp1_params_on_ranks`); its step gives state to every parameter of a
    stateful group that requires grad, also one no rank trained (an unused
    branch).  When a rank that did not step holds elements of such a
    parameter, FSDP's ``_allgather_orig_param_states`` miscounts its flat
    buffer there ("Manually calculated _sharded_numel_padded is incorrect")
    while the other ranks wait in the next collective.  Not Adagrad (its
    constructor gives every parameter state) nor LBFGS."""
    on = fsdp1_params_on_ranks(s)
    if not on:
        return False
    trainable = trainable_at_end(s)
    with_grad = got_grad(s) & trainable
    for opt in s.optimizers:
        if opt.name in ("adagrad", "lbfgs"):
            continue
        trained = state_after_training(s, opt)
        mine = set(opt.param_fqns())
        steps = [not (here & trained) and not (here & with_grad & mine) for here in on]
        if all(steps) or not any(steps):
            continue
        created = {f for f in stateful_params(opt) if f in trainable} - trained
        if any(f in here for here, stepped in zip(on, steps) if not stepped for f in created):
            return True
    return False


#: The conditions above, by name (`_conditions.HELPERS` adds them).
FSDP1 = (
    fsdp1_load_keeps_caller_tensors,
    fsdp1_unit_mixes_trained_state_keys,
    dcp_async_save_meets_sharded_tensor,
    dcp_fsdp1_template_partly_in_state,
    fsdp1_params_on_ranks,
    dsd_get_inits_some_ranks_over_fsdp1,
)
