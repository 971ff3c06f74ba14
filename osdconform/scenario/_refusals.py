"""Which plans cannot run with which world and model, and why (`accepts`).

Why its own module: most refusals are torch bugs or limits (torch 2.13) that
make a scenario unable even to train, whatever the backend; each is written
down next to its rule, with the reproducer script where there is one
(``expected_failures/repro/...``), so the refusals can be revisited when
torch changes.  The helpers here are plain shape arithmetic about a (plan,
model) pair, shared with the strategies (which draw only what is accepted)
and with the expected-failure conditions (`uneven_strided_params`).
"""

from __future__ import annotations

import dataclasses

from ._models import CONTAINER_TYPES, AnyModelSpec, BatchNormSpec, EmbeddingSpec
from ._plans import PlanSpec, fsdp_unit_of, mesh_shape_2d


def accepts(
    plan: PlanSpec, world_size: int, model: AnyModelSpec | None = None, steps: int | None = None
) -> str | None:
    """Return why `plan` cannot run at `world_size` (with `model`, for `steps`), or None if it can.

    Strategies call this with ``model=None`` to pick world sizes before the
    model is drawn, and with the model (and the training steps) once it is.  Dims smaller than or not
    divisible by the world (uneven and empty shards) are accepted everywhere on
    purpose: that is exactly what we want to test.
    """
    if world_size < 1:
        return "a world needs at least one rank"
    if plan.mesh_ndim == 2 and mesh_shape_2d(world_size) is None:
        return (
            f"a 2-D mesh needs a world size that factors as outer x inner with both > 1 "
            f"(4 = 2 x 2 among worlds 1..4); {world_size} does not"
        )
    if plan.kind == "fsdp1" and not plan.use_orig_params:
        # Without use_orig_params FSDP1 hands the optimizer only flat
        # parameters: param groups cannot be built per FQN (a flat parameter
        # mixes several), and no oracle can key their state by FQN without
        # FSDP's internals (see osdconform.reference._fqn).
        return "fsdp1 without use_orig_params exposes only flat parameters, which have no FQNs"
    if plan.kind == "pp" and world_size < 2:
        # One stage is the whole model trained through a schedule: nothing
        # is split, so it would test plan none again.
        return "a pipeline needs at least two stages (one per rank)"
    if model is None:
        return None
    if plan.kind == "pp":
        reason = _pipeline_refusal(plan, world_size, model)
        if reason:
            return reason
    if plan.kind in ("tp", "fsdp2+tp") and not model.linear_fqns():
        return "tensor parallelism splits nn.Linear modules and the model has none"
    if plan.kind == "fsdp2+tp":
        empty = empty_tp_pieces(plan, model, mesh_shape_2d(world_size)[1])
        if empty:
            # torch 2.13: FSDP2's reduce-scatter fails in backward ("_chunk_cat
            # expects non-empty tensor") on a parameter whose TP-local piece is
            # empty, so such a scenario cannot even train, whatever the backend.
            return f"FSDP2 over TP cannot train parameters whose TP piece is empty: {empty}"
    if plan.kind == "tp" and world_size == 1:
        shapes = model.param_shapes()
        narrow = [fqn for fqn, style in plan.tp if style == "colwise" and shapes.get(f"{fqn}.bias") == (1,)]
        if narrow:
            # torch 2.13: on a mesh of one rank, the backward of a colwise
            # Linear with one output and a bias (Shard(0) of shape (1,))
            # reduces the bias's broadcast gradient with a view (1, 1) -> (1,)
            # that DTensor's sharding propagation refuses ("would remove or
            # reshape sharded dimension 1, which requires redistribution"),
            # the defect of the reproducer
            # expected_failures/repro/torch_dtensor_sharded_param_width_one_backward.py
            # (on 2 or more ranks it trains).
            return f"colwise TP cannot train a one-output Linear with a bias on one rank: {narrow}"
    if plan.kind == "fsdp1" and _fsdp1_unit_loses_params(plan, world_size, model):
        # torch 2.13 bug, not a limit of the space: after a backward in which
        # a unit's own parameters get no gradient, NO_SHARD (which FSDP also
        # uses at world 1) leaves them unregistered from the module, so
        # named_parameters(), state_dict() and every OSD API (the oracle's
        # too) fail.  Reproducer:
        # expected_failures/repro/torch_fsdp1_no_shard_unregisters_params.py
        return (
            "FSDP1 unregisters a unit's parameters under NO_SHARD (or at world 1) "
            "when none of them gets a gradient (torch bug; see the reproducer)"
        )
    if plan.kind == "fsdp1":
        passing = _fsdp1_frozen_passthrough_units(plan, model)
        if passing:
            # torch 2.13 bug: a nested FSDP1 unit whose forward returns its
            # input tensor unchanged (every child unused) and whose parameters
            # are all frozen fails the first backward ("expected to be in
            # states [IDLE] but current state is FORWARD_BACKWARD"), whatever
            # the backend.  Reproducer:
            # expected_failures/repro/torch_fsdp1_frozen_passthrough_unit_backward.py
            return f"FSDP1 cannot train a unit that hands back its input with only frozen parameters: {passing}"
    if plan.kind == "dtensor":
        sharded = [f for f, places in plan.placements if set(places) != {"R"}]
        if sharded and conv_param_fqns(model):
            # torch 2.13: DTensor's convolution handler (_tp_conv) runs the
            # local conv on a sharded weight, or on the sharded activation a
            # sharded layer before it hands on, as if it were whole, so
            # training fails (kernel size 0, "expected weight to be at least
            # 1 at dimension 0", "expected input ... to have 5 channels, but
            # got 2") or hangs, whatever the backend.
            return f"DTensor convolutions cannot train in a model with sharded parameters: {sharded}"
        norms = [f for f in sharded if f in batchnorm_param_fqns(model)]
        if norms:
            # torch 2.13: batch_norm on a channel-sharded DTensor runs on each
            # rank's channels, and a rank with none fails ("input tensor must
            # have at least one element, but got input_sizes = [8, 0]").
            return f"DTensor batch norm cannot train with sharded parameters: {norms}"
        tables = [f for f in sharded if f in embedding_param_fqns(model)]
        if tables:
            # torch 2.13: an embedding lookup on a sharded DTensor table fails
            # on a rank whose piece is empty ("index_select(): self indexing
            # axis dim should be positive").
            return f"DTensor embeddings cannot train with sharded tables: {tables}"
        widths = model.tree().bare_param_widths()
        narrow = [f for f in sharded if widths.get(f) == 1]
        if narrow:
            # torch 2.13: the backward of adding a sharded bare parameter to
            # an activation of width 1 (h + p, h of shape (B, 1)) reduces the
            # broadcast gradient with a view (1, 1) -> (1,) that DTensor's
            # sharding propagation refuses ("would remove or reshape sharded
            # dimension 1, which requires redistribution"), even on a mesh of
            # one rank.  Reproducer:
            # expected_failures/repro/torch_dtensor_sharded_param_width_one_backward.py
            return f"DTensor cannot train a sharded bare parameter added to a width-1 activation: {narrow}"
        if world_size == 1:
            shapes = model.param_shapes()
            places = dict(plan.placements)
            one_out = [
                f for f in sharded
                if f.endswith(".weight") and len(shapes.get(f, ())) == 2 and shapes[f][0] == 1
                and places[f][0] == "S0" and shapes.get(f[: -len("weight")] + "bias") == (1,)
            ]
            if one_out:
                # torch 2.13, the same defect on a mesh of one rank: a linear
                # with one output whose weight is Shard(0) makes an activation
                # of width 1 sharded on dim 1, and the backward of adding the
                # bias (replicated or sharded) to it fails the same way (on 2
                # or more ranks it trains).
                return f"DTensor cannot train a one-output linear with a Shard(0) weight and a bias on one rank: {one_out}"
    sparse = getattr(model, "sparse_param_fqns", lambda: ())()
    if sparse and plan.kind != "none":
        # DDP, FSDP and DTensor all reduce or shard dense gradients; a sparse
        # Embedding gradient is supported by none of these wrappers here.
        return "sparse gradients (Embedding(sparse=True)) run only without a plan"
    if model is not None and plan.kind in ("fsdp1", "fsdp2", "fsdp2+tp") and len(model.dtypes()) > 1:
        # FSDP1: "Must flatten tensors with uniform dtype"; FSDP2: "FSDP expects
        # uniform original parameter dtype" (the root unit holds what no unit of
        # its own takes).  The strategies draw mixed dtypes only for none and
        # ddp; a reshard or a lifecycle going on under another plan must not.
        return f"FSDP shards a unit's parameters as one buffer, of one dtype; the model mixes {sorted(model.dtypes())}"
    if model is not None and plan.kind == "zero" and len(model.dtypes()) > 1:
        # torch's documented limit: "ZeroRedundancyOptimizer only supports using
        # the same dense type for all parameters" (a TypeError at construction).
        # The strategies draw mixed dtypes only for none and ddp; a reshard or a
        # lifecycle going on under zero must not.
        return f"ZeroRedundancyOptimizer takes parameters of one dtype; the model mixes {sorted(model.dtypes())}"
    if model is not None and plan.kind in ("fsdp1", "fsdp2", "fsdp2+tp") and "0-d param" in model.features():
        # FSDP1: "FSDP doesn't support scalar parameters" (ValueError at wrap).
        return "FSDP (fully_shard and FullyShardedDataParallel) does not take 0-d (scalar) parameters"
    if plan.kind == "fsdp1" and model is not None and steps and _no_backward_in_last_step(model, steps):
        # A step in which no used parameter requires grad runs the forward
        # without a backward (`_build.train`).  FSDP1 (SHARD_GRAD_OP) then
        # keeps its parameters unsharded, and, unlike FSDP2's reshard(), has
        # no public call that puts them back, so the state dict APIs see
        # parameters that are not the optimizer's (KeyError in
        # _map_param_key_to_optim_keys).  A limit of this harness's
        # training loop, not a checkpointing defect.
        return "FSDP1 cannot be resharded after a forward without backward (a step with every used parameter frozen)"
    if model is not None and plan.kind in ("ddp", "zero"):  # zero trains under DDP too
        frozen = {fqn for fqn, k in model.frozen_after().items() if k == 0}
        if frozen >= set(model.param_fqns()):
            return "DDP refuses a module with no parameter that requires grad"
    if getattr(model, "grad_dtype", None) is not None and plan.kind != "none":
        # torch 2.13: DDP's reducer copies each gradient into a bucket of the
        # parameter's dtype and refuses another ("Expected Float, got
        # BFloat16"); the sharding plans, which reduce gradients into buffers
        # of their own, are not tried with it.
        return "gradients of another dtype than their parameters' (grad_dtype) train only without a plan"
    norms = getattr(model, "unit_fqns", lambda kind: ())(BatchNormSpec) if plan.mixed_precision else ()
    if norms:
        # Not a checkpointing defect, limits of the arrangement in torch 2.13:
        # FSDP2 casts a BatchNorm's weight to bfloat16 and leaves its running
        # stats as they are, and CPU batch_norm takes bfloat16 input only with
        # float32 weight and stats ("expected scalar type BFloat16 but found
        # Float", "mixed dtype (CPU): expect parameter to have scalar type of
        # Float" in a float64 or bfloat16 model); FSDP1 wraps every BatchNorm in
        # a unit of its own with mixed precision off
        # (MixedPrecision._module_classes_to_ignore), which fails the same way,
        # and, for a BatchNorm without parameters, now and then in FSDP1's own
        # forward ("generator raised StopIteration").
        return f"mixed precision over BatchNorm modules: {sorted(norms)}"
    if model is not None and plan.wrap:
        bns = compiled_checkpointed_batchnorms(plan, model)
        if bns:
            # torch 2.13: the recomputation of a BatchNorm's forward in the
            # backward bumps num_batches_tracked in place a second time, and
            # under torch.compile autograd's saved-tensor version check fails.
            # Reproducer: expected_failures/repro/torch_compile_over_checkpointed_batchnorm.py
            return f"torch.compile around a checkpoint-wrapped BatchNorm cannot train: {bns}"
    if model is not None:
        from ._releases import release_model_refusal  # older torch (it imports this module)

        return release_model_refusal(plan, model, steps)
    return None


def _pipeline_refusal(plan: PlanSpec, world_size: int, model: AnyModelSpec) -> str | None:
    """Why `model` cannot be cut into `world_size` pipeline stages (`_pipeline`), or None."""
    from ._pipeline import stage_param_fqns, top_level_names

    layers = len(top_level_names(model))
    if layers < world_size:
        return f"a pipeline of {world_size} stages needs as many top-level layers; the model has {layers}"
    if any(fqn == "" for fqn, _ in plan.wrap):
        # A stage is the user's module cut to its layers; torchtitan compiles
        # each block of a pipelined model, never the whole (there is none).
        return "a pipeline stage cannot be cut out of a model compiled whole"
    empty = [s for s in range(world_size) if not stage_param_fqns(model, world_size, s)]
    if empty:
        return f"pipeline stages {empty} would own no parameter (an optimizer needs one)"
    return None


def _no_backward_in_last_step(model: AnyModelSpec, steps: int) -> bool:
    """Whether the last of `steps` training steps has no used parameter that requires grad
    (freezing only grows, so then no backward runs from that step on)."""
    frozen = model.frozen_after()
    unused = set(model.unused_param_fqns())
    return not [f for f in model.param_fqns() if f not in unused and frozen.get(f, steps) >= steps]


def _fsdp1_unit_loses_params(plan: PlanSpec, world_size: int, model: AnyModelSpec) -> bool:
    """Whether `plan` meets the FSDP1 bug `accepts` names: some unit's own parameters
    (the root's, or a wrapped module's not in a unit inside it) may all get no gradient.

    The reproducer shows it for the root; the catch-all reshard that skips the
    unit runs over every unit, and a run of the suite met it on a wrapped one.
    """
    if not (world_size == 1 or plan.sharding_strategy == "NO_SHARD"):
        return False
    no_grad = set(model.unused_param_fqns()) | set(model.frozen_after())
    owned: dict[str, list[str]] = {}
    for f in model.param_fqns():
        owned.setdefault(fsdp_unit_of(plan, f), []).append(f)
    return any(all(f in no_grad for f in fqns) for fqns in owned.values())


def compiled_checkpointed_batchnorms(plan: PlanSpec, model: AnyModelSpec) -> list[str]:
    """BatchNorms that track running stats inside a checkpoint wrapper that a
    ``torch.compile`` wraps (at the same module after it, or at any module above)."""

    def within(fqn: str, outer: str) -> bool:
        return outer == "" or fqn == outer or fqn.startswith(outer + ".")

    tracked = {b.rpartition(".")[0] for b in getattr(model, "buffer_fqns", lambda: ())() if b.endswith(".num_batches_tracked")}
    found = []
    for bn in sorted(tracked):
        for i, (ckpt, wrapper) in enumerate(plan.wrap):
            if wrapper != "checkpoint" or not within(bn, ckpt):
                continue
            if any(w == "compile" and within(ckpt, c) and (c != ckpt or j > i) for j, (c, w) in enumerate(plan.wrap)):
                found.append(bn)
                break
    return found


def _fsdp1_frozen_passthrough_units(plan: PlanSpec, model: AnyModelSpec) -> list[str]:
    """The FSDP1 units of `plan` (not the root) that meet the bug `accepts` names: a
    container none of whose leaves runs (its forward returns its input) whose parameters
    are all frozen when it is built (frozen later, after a backward, it trains)."""
    tree = model.tree()
    frozen, units = tree.frozen_after(), tree.units()
    out = []
    for fqn in plan.shard:
        inside = [u for u in units if u.fqn.startswith(fqn + ".")]
        params = [p for p in tree.param_fqns() if p.startswith(fqn + ".")]
        outer = next((u for u in units if u.fqn == fqn), None)
        if (
            outer is not None and outer.kind in CONTAINER_TYPES and params
            and all(frozen.get(f) == 0 for f in params)
            and not any(u.used for u in inside if u.kind not in CONTAINER_TYPES)
            and not set(params) - set(tree.unused_param_fqns())
        ):
            out.append(fqn)
    return out


def conv_param_fqns(model: AnyModelSpec) -> frozenset[str]:
    """Parameters of convolutions: weights with 3+ dims, and the biases beside them."""
    shapes = model.param_shapes()
    weights = {f for f, shape in shapes.items() if f.endswith(".weight") and len(shape) >= 3}
    biases = {f for f in shapes if f.endswith(".bias") and f[: -len("bias")] + "weight" in weights}
    return frozenset(weights | biases)


def _module_param_fqns(model: AnyModelSpec, kind: type) -> frozenset[str]:
    units = getattr(model, "unit_fqns", lambda kind: ())(kind)
    return frozenset(f for f in model.param_fqns() if f.rpartition(".")[0] in units)


def batchnorm_param_fqns(model: AnyModelSpec) -> frozenset[str]:
    """Parameters of BatchNorm modules."""
    return _module_param_fqns(model, BatchNormSpec)


def embedding_param_fqns(model: AnyModelSpec) -> frozenset[str]:
    """Parameters (tables) of Embedding modules."""
    return _module_param_fqns(model, EmbeddingSpec)


#: The dim of a Linear's weight each TP style splits.
TP_WEIGHT_DIM = {"colwise": 0, "rowwise": 1}


def empty_tp_pieces(plan: PlanSpec, model: AnyModelSpec, tp_size: int) -> list[str]:
    """Parameters that TP would split into pieces some of which are empty."""
    shapes = model.param_shapes()
    empty = []
    for fqn, style in plan.tp:
        d = TP_WEIGHT_DIM[style]
        if shapes[f"{fqn}.weight"][d] < tp_size:
            empty.append(f"{fqn}.weight")
        bias = shapes.get(f"{fqn}.bias")
        if style == "colwise" and bias is not None and bias[0] < tp_size:
            empty.append(f"{fqn}.bias")
    return empty


def uneven_strided_params(plan: PlanSpec, model: AnyModelSpec, world_size: int) -> frozenset[str]:
    """Parameters whose FSDP2-over-TP layout is a strided shard with unequal pieces.

    Under ``fsdp2+tp`` a colwise Linear's weight and bias are split on dim 0
    twice: by TP, then each TP piece by FSDP2 over the data-parallel ranks,
    a layout DTensor writes ``(_StridedShard(0, split_factor=tp), Shard(0))``.
    Data-parallel rank ``i`` holds chunk ``i`` of every TP piece; the pieces
    are unequal when those sums differ (e.g. 6 rows on 2 x 2: TP 3 + 3, each
    2 + 1, so dp ranks hold 4 and 2 rows).  Plain chunk arithmetic
    (`reference._chunks`), for predicates and coverage.
    """
    if plan.kind != "fsdp2+tp" or mesh_shape_2d(world_size) is None:
        return frozenset()
    from ..reference._chunks import chunk_sizes

    dp, tp = mesh_shape_2d(world_size)
    shapes = model.param_shapes()
    uneven = set()
    for fqn, style in plan.tp:
        if style != "colwise":
            continue
        for name in (f"{fqn}.weight", f"{fqn}.bias"):
            if name not in shapes:
                continue
            per_dp_rank = [sum(chunk_sizes(piece, dp)[i] for piece in chunk_sizes(shapes[name][0], tp)) for i in range(dp)]
            if len(set(per_dp_rank)) > 1:
                uneven.add(name)
    return frozenset(uneven)


def without_grad_dtype(model: AnyModelSpec) -> AnyModelSpec:
    """`model` with gradients in its parameters' own dtypes (`TreeSpec.grad_dtype` unset)."""
    if getattr(model, "grad_dtype", None) is None:
        return model
    return dataclasses.replace(model, grad_dtype=None)


def model_for_plan(plan: PlanSpec, world_size: int, model: AnyModelSpec) -> AnyModelSpec:
    """The model a job goes on with under `plan` after a checkpoint of `model`:
    `model` itself, or, where the plan cannot train gradients of another dtype
    (`accepts`), `model` with its parameters' own (a reshard or a lifecycle
    moving a grad_dtype model under a plan).  So a target plan is drawn and
    checked as it was before models had a grad_dtype."""
    if accepts(plan, world_size, model) is None:
        return model
    return without_grad_dtype(model)
