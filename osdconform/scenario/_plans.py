"""The plan dimension of a scenario: `PlanSpec`, what each plan accepts, how it is applied.

A plan turns the user's module into the module that is trained (possibly a
wrapper) and may wrap the optimizers (ZeRO).  `accepts` says why a (plan,
world size, model) combination is invalid, so strategies draw only valid
combinations and the reason stays written down next to the rule.

Kinds and their options (fields of `PlanSpec`, each with a default that is
the simplest choice, so a drawn plan shrinks toward it):

========== ==================================================================
none       the module as is; every rank trains the whole batch
ddp        ``DistributedDataParallel``
fsdp1      ``FullyShardedDataParallel``: ``shard`` (units wrapped on their own,
           through a lambda wrap policy), ``use_orig_params``,
           ``sharding_strategy`` (HYBRID_SHARD on a 2-D replicate x shard mesh)
fsdp2      ``fully_shard`` on ``shard`` then the root; ``reshard_after_forward``;
           ``mesh_2d``: a 2-D HSDP mesh (replicate x shard)
tp         tensor parallel: ``tp`` names (Linear FQN, colwise | rowwise)
fsdp2+tp   TP on the inner mesh dim, ``fully_shard`` on the outer (2-D mesh)
zero       DDP and ``ZeroRedundancyOptimizer`` around each optimizer
dtensor    every parameter a DTensor with its own ``placements`` ("R" or
           "S<dim>" per mesh dim) on a 1-D or (``mesh_2d``) 2-D mesh
========== ==================================================================
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ._models import AnyModelSpec

#: Plans the scenario model knows.
PLAN_KINDS = ("none", "ddp", "fsdp1", "fsdp2", "tp", "fsdp2+tp", "zero", "dtensor")

#: FSDP1 sharding strategies drawn (``torch.distributed.fsdp.ShardingStrategy`` names),
#: simplest (the default) first.
FSDP1_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD")
TP_STYLES = ("colwise", "rowwise")

#: Which fields each kind takes (beyond ``kind``); every other field must keep its default.
_FIELDS = {
    "none": (),
    "ddp": (),
    "fsdp1": ("shard", "use_orig_params", "sharding_strategy"),
    "fsdp2": ("shard", "reshard_after_forward", "mesh_2d"),
    "tp": ("tp",),
    "fsdp2+tp": ("shard", "reshard_after_forward", "tp"),
    "zero": (),
    "dtensor": ("mesh_2d", "placements"),
}


@dataclass(frozen=True)
class PlanSpec:
    """How the model is parallelised (see the module docstring for each kind's options).

    ``shard``: submodules (from ``AnyModelSpec.layer_fqns``) wrapped / sharded on
    their own before the root.  ``tp``: ``(linear_fqn, style)`` pairs; every
    style is self-contained (replicated input and output), so any ``nn.Linear``
    may take either whatever surrounds it.  ``placements``: ``(param_fqn,
    (placement per mesh dim, ...))`` with placements ``"R"`` (Replicate) or
    ``"S<d>"`` (Shard(d)); parameters not listed are replicated.
    """

    kind: str = "none"
    shard: tuple[str, ...] = ()
    reshard_after_forward: bool = True
    mesh_2d: bool = False
    use_orig_params: bool = True
    sharding_strategy: str = "FULL_SHARD"
    tp: tuple[tuple[str, str], ...] = ()
    placements: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in PLAN_KINDS:
            raise ValueError(f"unknown plan {self.kind!r}; known: {PLAN_KINDS}")
        for f in dataclasses.fields(self):
            if f.name != "kind" and f.name not in _FIELDS[self.kind] and getattr(self, f.name) != f.default:
                raise ValueError(f"plan {self.kind!r} takes no {f.name!r}")
        if self.sharding_strategy not in FSDP1_STRATEGIES:
            raise ValueError(f"unknown sharding strategy {self.sharding_strategy!r}; known: {FSDP1_STRATEGIES}")
        for fqn, style in self.tp:
            if style not in TP_STYLES:
                raise ValueError(f"unknown TP style {style!r} for {fqn!r}; known: {TP_STYLES}")
        for fqn, places in self.placements:
            if len(places) != self.mesh_ndim:
                raise ValueError(f"{fqn!r} has {len(places)} placements for a {self.mesh_ndim}-D mesh")
            for p in places:
                _placement(p)  # raises on a malformed one

    def __repr__(self) -> str:
        # Only the fields that differ from their defaults: short, and still
        # Python that rebuilds the spec.
        parts = [repr(self.kind)]
        for f in dataclasses.fields(self)[1:]:
            value = getattr(self, f.name)
            if value != f.default:
                parts.append(f"{f.name}={value!r}")
        return f"PlanSpec({', '.join(parts)})"

    def fsdp_unit(self, fqn: str) -> str:
        """The FSDP unit holding parameter `fqn` (`fsdp_unit_of`; for predicates)."""
        return fsdp_unit_of(self, fqn)

    @property
    def mesh_ndim(self) -> int:
        """Dimensions of the device mesh: 2 for HSDP, HYBRID_SHARD, FSDP2+TP and 2-D dtensor."""
        if self.kind == "fsdp2+tp" or self.mesh_2d:
            return 2
        if self.kind == "fsdp1" and self.sharding_strategy == "HYBRID_SHARD":
            return 2
        return 1

    @property
    def data_parallel(self) -> bool:
        """Whether ranks train on different slices of the global batch."""
        return self.kind in ("ddp", "fsdp1", "fsdp2", "fsdp2+tp", "zero")

    def batch_rows(self, rank: int, world_size: int, rows: int) -> tuple[int, int]:
        """The rows ``[start, stop)`` of a global batch of `rows` that `rank` trains on.

        Data-parallel plans split the batch over their data-parallel ranks;
        under FSDP2+TP the ranks of one TP group (the inner mesh dim) share a
        slice, because TP needs the same input on all of them.
        """
        if not self.data_parallel:
            return 0, rows
        ways, index = world_size, rank
        if self.kind == "fsdp2+tp":
            dp, tp = mesh_shape_2d(world_size)
            ways, index = dp, rank // tp
        per = rows // ways
        return index * per, (index + 1) * per

    def mesh_shape(self, world_size: int) -> tuple[int, ...]:
        return mesh_shape_2d(world_size) if self.mesh_ndim == 2 else (world_size,)

    def features(self) -> frozenset[str]:
        """Feature tags for coverage reports and expected-failure predicates."""
        tags = {f"plan:{self.kind}"}
        if self.mesh_ndim == 2:
            tags.add("mesh:2d")
        if self.kind == "fsdp1":
            tags.add(f"fsdp1:{self.sharding_strategy.lower()}")
            tags.add("fsdp1:orig params" if self.use_orig_params else "fsdp1:flat params")
        if self.kind in ("fsdp2", "fsdp2+tp") and not self.reshard_after_forward:
            tags.add("fsdp2:no reshard after forward")
        for _, style in self.tp:
            tags.add(f"tp:{style}")
        for _, places in self.placements:
            for p in places:
                tags.add("dtensor:replicate" if p == "R" else "dtensor:shard" if p == "S0" else "dtensor:shard dim>0")
        return frozenset(tags)

    def model_features(self, model: AnyModelSpec, world_size: int) -> frozenset[str]:
        """Tags that depend on the model and world too (added to `Scenario.features`).

        ``fsdp2+tp:uneven strided shard``: FSDP2 shards a dim that colwise TP
        already split (a strided shard) into pieces of different sizes
        (`uneven_strided_params`).
        """
        tags = set()
        if uneven_strided_params(self, model, world_size):
            tags.add("fsdp2+tp:uneven strided shard")
        return frozenset(tags)

    def describe(self) -> str:
        own = ", ".join(self.shard) if self.shard else "no submodule"
        mesh = "2-D" if self.mesh_ndim == 2 else "1-D"
        tp = ", ".join(f"{s} {f}" for f, s in self.tp) or "no Linear"
        if self.kind == "fsdp1":
            orig = "use_orig_params" if self.use_orig_params else "flat parameters"
            return f"fsdp1 {self.sharding_strategy} ({orig}; own FSDP unit: {own}; then the root)"
        if self.kind == "fsdp2":
            hsdp = "2-D HSDP mesh" if self.mesh_2d else "1-D mesh"
            rf = "" if self.reshard_after_forward else ", reshard_after_forward=False"
            return f"fsdp2 on a {hsdp} (fully_shard on {own}, then the root{rf})"
        if self.kind == "tp":
            return f"tensor parallel ({tp})"
        if self.kind == "fsdp2+tp":
            rf = "" if self.reshard_after_forward else ", reshard_after_forward=False"
            return f"fsdp2+tp on a 2-D mesh (TP: {tp}; fully_shard on {own}, then the root{rf})"
        if self.kind == "zero":
            return "zero (DDP + ZeroRedundancyOptimizer)"
        if self.kind == "dtensor":
            places = "; ".join(f"{f}: {', '.join(p)}" for f, p in self.placements) or "all replicated"
            return f"dtensor on a {mesh} mesh ({places})"
        return self.kind

    def validate(self, model: AnyModelSpec) -> None:
        """Raise ValueError if the plan names parts the model does not have."""
        unknown = set(self.shard) - set(model.layer_fqns())
        if unknown:
            raise ValueError(f"plan shards unknown submodules {sorted(unknown)}")
        unknown = {f for f, _ in self.tp} - set(model.linear_fqns())
        if unknown:
            raise ValueError(f"plan applies TP to modules that are no nn.Linear: {sorted(unknown)}")
        shapes = model.param_shapes()
        for fqn, places in self.placements:
            if fqn not in shapes:
                raise ValueError(f"plan places unknown parameter {fqn!r}")
            for p in places:
                d = _placement(p)
                if d is not None and d >= len(shapes[fqn]):
                    raise ValueError(f"{fqn!r} of shape {shapes[fqn]} has no dim {d} to shard ({p})")


def _placement(text: str) -> int | None:
    """``"R"`` -> None (Replicate); ``"S<d>"`` -> d (Shard(d))."""
    if text == "R":
        return None
    if text.startswith("S") and text[1:].isdigit():
        return int(text[1:])
    raise ValueError(f"placement {text!r} is neither 'R' nor 'S<dim>'")


def mesh_shape_2d(world_size: int) -> tuple[int, int] | None:
    """The 2-D mesh ``(outer, inner)`` of `world_size` ranks with both dims > 1, or None.

    The outer dim is the smallest factor > 1.  A 2-D mesh with a dim of 1
    would be a 1-D mesh in disguise, so on worlds 1..4 only 4 (2 x 2) has one.
    """
    for outer in range(2, world_size):
        if world_size % outer == 0 and world_size // outer > 1:
            return outer, world_size // outer
    return None


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
    if model is None:
        return None
    if plan.kind in ("tp", "fsdp2+tp") and not model.linear_fqns():
        return "tensor parallelism splits nn.Linear modules and the model has none"
    if plan.kind == "fsdp2+tp":
        empty = empty_tp_pieces(plan, model, mesh_shape_2d(world_size)[1])
        if empty:
            # torch 2.13: FSDP2's reduce-scatter fails in backward ("_chunk_cat
            # expects non-empty tensor") on a parameter whose TP-local piece is
            # empty, so such a scenario cannot even train, whatever the backend.
            return f"FSDP2 over TP cannot train parameters whose TP piece is empty: {empty}"
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
    sparse = getattr(model, "sparse_param_fqns", lambda: ())()
    if sparse and plan.kind != "none":
        # DDP, FSDP and DTensor all reduce or shard dense gradients; a sparse
        # Embedding gradient is supported by none of these wrappers here.
        return "sparse gradients (Embedding(sparse=True)) run only without a plan"
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
    return None


def _no_backward_in_last_step(model: AnyModelSpec, steps: int) -> bool:
    """Whether the last of `steps` training steps has no used parameter that requires grad
    (freezing only grows, so then no backward runs from that step on)."""
    frozen = model.frozen_after()
    unused = set(model.unused_param_fqns())
    return not [f for f in model.param_fqns() if f not in unused and frozen.get(f, steps) >= steps]


def fsdp_unit_of(plan: PlanSpec, fqn: str) -> str:
    """The FSDP unit that holds parameter `fqn`: the innermost wrapped module whose
    FQN prefixes it, or ``""`` (the root) if none does."""
    return max((u for u in plan.shard if fqn.startswith(u + ".")), key=len, default="")


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
    from ._models import BatchNormSpec

    return _module_param_fqns(model, BatchNormSpec)


def embedding_param_fqns(model: AnyModelSpec) -> frozenset[str]:
    """Parameters (tables) of Embedding modules."""
    from ._models import EmbeddingSpec

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


def apply_plan(plan: PlanSpec, module: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """Apply `plan` to `module` in place where possible; return what to train."""
    reason = accepts(plan, world_size)
    if reason:
        raise ValueError(f"plan {plan.kind!r} at world size {world_size}: {reason}")
    return _APPLY[plan.kind](plan, module, device, world_size)


def wrap_optimizers(
    plan: PlanSpec, optimizers: Sequence[torch.optim.Optimizer]
) -> tuple[torch.optim.Optimizer, ...]:
    """The optimizers the workload steps: ZeRO wraps each one; other plans keep them."""
    if plan.kind != "zero":
        return tuple(optimizers)
    return tuple(_zero(opt) for opt in optimizers)


def _zero(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``ZeroRedundancyOptimizer`` with `optimizer`'s class, param groups and defaults.

    The groups carry every hyperparameter (as built), so ZeRO's local
    optimizers get them too; the defaults are cut to what the class's
    constructor takes.
    """
    from torch.distributed.optim import ZeroRedundancyOptimizer

    cls = type(optimizer)
    accepted = inspect.signature(cls.__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted and k != "params"}
    groups = [dict(g, params=list(g["params"])) for g in optimizer.param_groups]
    return ZeroRedundancyOptimizer(groups, optimizer_class=cls, **defaults)


# -- one function per kind ------------------------------------------------------


#: Device meshes built in this process, by default process group, device
#: type, shape and dim names.  A 2-D mesh creates a process group per dim, and
#: nothing destroys them: a gloo group keeps three threads alive, so a warm
#: world that built a mesh per example slowed down as it piled up thousands
#: of them.  A mesh holds no model state, so one per shape serves every
#: example; keying on the default group keeps a re-initialised world from
#: seeing the old world's meshes.
_MESHES: dict[tuple, object] = {}


def device_mesh(device_type: str, shape: tuple[int, ...], names: tuple[str, ...] | None = None):
    """The device mesh of `shape` over this process's world, built once (`_MESHES`)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    key = (dist.group.WORLD, device_type, tuple(shape), names)
    if key not in _MESHES:
        _MESHES[key] = init_device_mesh(device_type, tuple(shape), mesh_dim_names=names)
    return _MESHES[key]


def _mesh(plan: PlanSpec, device: torch.device, world_size: int, names=None):
    return device_mesh(device.type, plan.mesh_shape(world_size), names)


def _none(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    return module


def _ddp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device] if device.type == "cuda" else None
    # Unused branches and parameters frozen after some steps get no gradient:
    # DDP must look for them, or it waits for their reduction forever.
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def _fsdp1(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    from ..reference import remember_full_shapes

    # FSDP1 flattens the original parameters into 1-D pieces and keeps no
    # public record of their shapes; the reference reads them from here.
    remember_full_shapes(module)
    units = {module.get_submodule(name) for name in plan.shard}
    policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: m in units)
    mesh = _mesh(plan, device, world_size) if plan.mesh_ndim == 2 else None
    return FullyShardedDataParallel(
        module,
        auto_wrap_policy=policy,
        sharding_strategy=ShardingStrategy[plan.sharding_strategy],
        use_orig_params=plan.use_orig_params,
        device_id=device,
        device_mesh=mesh,
    )


def _fully_shard(plan: PlanSpec, module: nn.Module, mesh) -> None:
    from torch.distributed.fsdp import fully_shard

    # Innermost first: fully_shard on a module whose parameters an outer
    # fully_shard already made DTensors fails (it takes them for TP shards).
    for name in reversed(plan.shard):
        fully_shard(module.get_submodule(name), mesh=mesh, reshard_after_forward=plan.reshard_after_forward)
    fully_shard(module, mesh=mesh, reshard_after_forward=plan.reshard_after_forward)


def _fsdp2(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    # On a 2-D mesh fully_shard replicates over dim 0 and shards over dim 1 (HSDP).
    names = ("replicate", "shard") if plan.mesh_ndim == 2 else None
    _fully_shard(plan, module, _mesh(plan, device, world_size, names=names))
    return module


def _tp_plan(plan: PlanSpec) -> dict:
    """Each Linear's style, with replicated input and output so it stands alone."""
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    styles = {
        "colwise": lambda: ColwiseParallel(output_layouts=Replicate()),
        "rowwise": lambda: RowwiseParallel(input_layouts=Replicate()),
    }
    return {fqn: styles[style]() for fqn, style in plan.tp}


def _tp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    """TP, and each DTensor parameter's gradient in its own layout (see `_like_param`)."""
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.parallel import parallelize_module

    parallelize_module(module, _mesh(plan, device, world_size), _tp_plan(plan))
    for param in module.parameters():
        if isinstance(param, DTensor) and param.requires_grad:
            param.register_hook(functools.partial(_like_param, param))
    return module


def _fsdp2_tp(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    from torch.distributed.tensor.parallel import parallelize_module

    mesh = _mesh(plan, device, world_size, names=("dp", "tp"))
    parallelize_module(module, mesh["tp"], _tp_plan(plan))
    _fully_shard(plan, module, mesh["dp"])
    return module


def _zero_model(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    return _ddp(plan, module, device, world_size)


def _dtensor(plan: PlanSpec, module: nn.Module, device, world_size) -> nn.Module:
    """Distribute each parameter with its placements; inputs and outputs stay plain tensors.

    Inputs enter as replicated DTensors, so every op runs on DTensors and
    autograd gives each parameter its gradient in its own layout; the output
    is made replicated and local again, so the loss is the same on every rank.
    """
    from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_module, distribute_tensor

    mesh = _mesh(plan, device, world_size)
    chosen = dict(plan.placements)
    replicate = tuple(Replicate() for _ in range(mesh.ndim))
    canonical: dict[int, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        canonical.setdefault(id(param), name)
    made: dict[int, nn.Parameter] = {}  # tied parameters stay tied

    def partition(prefix: str, submodule: nn.Module, mesh) -> None:
        for name, param in list(submodule.named_parameters(recurse=False)):
            if id(param) not in made:
                places = chosen.get(canonical[id(param)], ("R",) * mesh.ndim)
                placements = [Replicate() if (d := _placement(p)) is None else Shard(d) for p in places]
                made[id(param)] = new = nn.Parameter(
                    distribute_tensor(param.detach(), mesh, placements), requires_grad=param.requires_grad
                )
                if new.requires_grad:
                    new.register_hook(functools.partial(_like_param, new))
            submodule.register_parameter(name, made[id(param)])

    def replicated(a):
        # The model's input is a tuple (features, indices): convert inside it too.
        if isinstance(a, torch.Tensor) and not isinstance(a, DTensor):
            return DTensor.from_local(a, mesh, replicate, run_check=False)
        if isinstance(a, (tuple, list)):
            return type(a)(replicated(x) for x in a)
        return a

    def inputs(mod, args, mesh):
        return tuple(replicated(a) for a in args)

    def outputs(mod, out, mesh):
        return out.redistribute(mesh, replicate).to_local() if isinstance(out, DTensor) else out

    distribute_module(module, mesh, partition, inputs, outputs)
    return module


def _like_param(param, grad):
    """`grad` in `param`'s layout.

    Autograd may hand a DTensor parameter a gradient laid out otherwise (torch
    2.13: a dim sharded on both mesh dims, or a TP bias split into empty
    pieces, comes back replicated); optimizers update their state in place,
    which DTensor allows only between equal layouts.
    """
    if grad.placements != param.placements:
        return grad.redistribute(param.device_mesh, param.placements)
    return grad


def trainable_params(module: nn.Module) -> dict[str, nn.Parameter]:
    """The module's parameters by the user's FQN (FSDP1's wrapper segments removed)."""
    params: dict[str, nn.Parameter] = {}
    for name, param in module.named_parameters():
        params.setdefault(name.replace("_fsdp_wrapped_module.", ""), param)
    return params


_APPLY: dict[str, Callable[..., nn.Module]] = {
    "none": _none,
    "ddp": _ddp,
    "fsdp1": _fsdp1,
    "fsdp2": _fsdp2,
    "tp": _tp,
    "fsdp2+tp": _fsdp2_tp,
    "zero": _zero_model,
    "dtensor": _dtensor,
}
