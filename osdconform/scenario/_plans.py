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
pp         pipeline parallelism: rank r is stage r, owning a contiguous run of
           the top-level layers (`_pipeline`), trained by a GPipe schedule
========== ==================================================================

Every kind also takes ``wrap``: activation checkpointing and ``torch.compile``
of submodules or of the whole model, applied when the model is built, before
the plan (see `_wrappers`).  The FSDP kinds take ``mixed_precision``: the
units compute in bfloat16 over float32 (the model's) parameters and reduce
gradients in float32 (FSDP1 ``MixedPrecision``, FSDP2 ``MixedPrecisionPolicy``:
`MIXED_PRECISION`); the optimizers keep stepping the full-precision shards.

Why the plan dimension is three modules: this one is the spec (plain data,
no torch); `_refusals` holds `accepts`, the combinations that cannot run and
why (most of them torch bugs, each with its reproducer named beside it);
`_apply` is the torch code that builds each plan on a rank.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ._models import AnyModelSpec
from ._wrappers import describe_wraps, validate_wraps, wrap_features

#: Plans the scenario model knows.
PLAN_KINDS = ("none", "ddp", "fsdp1", "fsdp2", "tp", "fsdp2+tp", "zero", "dtensor", "pp")

#: FSDP1 sharding strategies drawn (``torch.distributed.fsdp.ShardingStrategy`` names),
#: simplest (the default) first.
FSDP1_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD")
TP_STYLES = ("colwise", "rowwise")
#: Plans that take ``mixed_precision``.
MIXED_PRECISION_PLANS = ("fsdp1", "fsdp2", "fsdp2+tp")
#: What ``mixed_precision=True`` sets (dtype names: this module imports no torch):
#: the dtype units compute in and the one gradients are reduced in.  Buffers keep theirs.
MIXED_PRECISION = {"param_dtype": "bfloat16", "reduce_dtype": "float32"}
#: The feature tag of a mixed-precision plan.
MIXED_PRECISION_TAG = "precision:bf16 compute"

#: Which fields each kind takes (beyond ``kind`` and ``wrap``, which every kind takes);
#: every other field must keep its default.
_FIELDS = {
    "none": (),
    "ddp": (),
    "fsdp1": ("shard", "use_orig_params", "sharding_strategy", "mixed_precision"),
    "fsdp2": ("shard", "reshard_after_forward", "mesh_2d", "mixed_precision"),
    "tp": ("tp",),
    "fsdp2+tp": ("shard", "reshard_after_forward", "tp", "mixed_precision"),
    "zero": (),
    "dtensor": ("mesh_2d", "placements"),
    "pp": (),
}


@dataclass(frozen=True)
class PlanSpec:
    """How the model is parallelised (see the module docstring for each kind's options).

    ``shard``: submodules (from ``AnyModelSpec.layer_fqns``) wrapped / sharded on
    their own before the root.  ``tp``: ``(linear_fqn, style)`` pairs; every
    style is self-contained (replicated input and output), so any ``nn.Linear``
    may take either whatever surrounds it.  ``placements``: ``(param_fqn,
    (placement per mesh dim, ...))`` with placements ``"R"`` (Replicate) or
    ``"S<d>"`` (Shard(d)); parameters not listed are replicated.  ``wrap``:
    ``(module_fqn, "checkpoint" | "compile")`` in the order applied (`_wrappers`).
    ``mixed_precision``: FSDP units compute in bfloat16 and reduce in float32
    (`MIXED_PRECISION`).
    """

    kind: str = "none"
    shard: tuple[str, ...] = ()
    reshard_after_forward: bool = True
    mesh_2d: bool = False
    use_orig_params: bool = True
    sharding_strategy: str = "FULL_SHARD"
    tp: tuple[tuple[str, str], ...] = ()
    placements: tuple[tuple[str, tuple[str, ...]], ...] = ()
    wrap: tuple[tuple[str, str], ...] = ()
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PLAN_KINDS:
            raise ValueError(f"unknown plan {self.kind!r}; known: {PLAN_KINDS}")
        for f in dataclasses.fields(self):
            if f.name not in ("kind", "wrap") and f.name not in _FIELDS[self.kind] and getattr(self, f.name) != f.default:
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
        if self.mixed_precision:
            tags.add(MIXED_PRECISION_TAG)
        return frozenset(tags) | wrap_features(self.wrap)

    def model_features(self, model: AnyModelSpec, world_size: int) -> frozenset[str]:
        """Tags that depend on the model and world too (added to `Scenario.features`).

        ``fsdp2+tp:uneven strided shard``: FSDP2 shards a dim that colwise TP
        already split (a strided shard) into pieces of different sizes
        (`uneven_strided_params`).
        """
        from ._refusals import uneven_strided_params  # it imports this module

        tags = set()
        if uneven_strided_params(self, model, world_size):
            tags.add("fsdp2+tp:uneven strided shard")
        return frozenset(tags)

    def describe(self) -> str:
        text = self._describe_kind()
        if self.mixed_precision:
            text += ", computing in bfloat16 (gradients reduced in float32)"
        if self.wrap:
            text += f", model wrapped: {describe_wraps(self.wrap)}"
        return text

    def _describe_kind(self) -> str:
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
        if self.kind == "pp":
            return "pp (rank r is pipeline stage r over its run of top-level layers; GPipe schedule)"
        if self.kind == "dtensor":
            places = "; ".join(f"{f}: {', '.join(p)}" for f, p in self.placements) or "all replicated"
            return f"dtensor on a {mesh} mesh ({places})"
        return self.kind

    def validate(self, model: AnyModelSpec) -> None:
        """Raise ValueError if the plan names parts the model does not have."""
        validate_wraps(self.wrap, model)
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

def fsdp_unit_of(plan: PlanSpec, fqn: str) -> str:
    """The FSDP unit that holds parameter `fqn`: the innermost wrapped module whose
    FQN prefixes it, or ``""`` (the root) if none does."""
    return max((u for u in plan.shard if fqn.startswith(u + ".")), key=len, default="")

