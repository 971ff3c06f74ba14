"""Whole scenarios, composed from the per-dimension strategies.

Each piece shrinks toward its simplest value: the smallest model, one
optimizer with one param group and default hyperparameters, plan ``none``,
world size 1 (the first of the allowed sizes), no training step.
"""

from __future__ import annotations

from typing import Sequence

from hypothesis import assume
from hypothesis import strategies as st

from ..scenario import PLAN_KINDS, PlanSpec, Scenario, plan_accepts
from ..scenario._catalogue import kind_of
from ..scenario._models import EmbeddingSpec, LinearSpec, TreeSpec
from ..scenario._pipeline import pipeline_refusal
from ._models import DRAW_GRAD_DTYPE, models, with_grad_dtype_by_seed
from ._optimizers import fit_optimizers, optimizer_blueprints, runs_under
from ._plans import DRAW_MIXED_PRECISION, DRAW_WRAPPERS, dressed_by_seed, fit_plan, pipelined_of_seed, plan_blueprints

MAX_STEPS = 3
#: Plans that take a model whose parameters mix dtypes.
MIXED_DTYPE_PLANS = ("none", "ddp")
#: Plans that split Linears (and need one).
TP_PLANS = ("tp", "fsdp2+tp")
#: Plans that take a model whose embeddings have sparse gradients.
SPARSE_PLANS = ("none",)


@st.composite
def full_scenarios(
    draw,
    *,
    world_sizes: Sequence[int] = (1, 2, 3, 4),
    plan_kinds: Sequence[str] = PLAN_KINDS,
    max_steps: int = MAX_STEPS,
    min_steps: int = 0,
    device: str = "cpu",
    wrapped: bool | None = None,
    mixed_precision: bool | None = None,
    grad_dtype: bool | None = None,
) -> Scenario:
    """Whole scenarios.  World sizes shrink toward the first given (keep it the smallest).

    `device` is where the ranks will train (``--osd-device``): optimizer
    flags are drawn as torch allows them there (`_optimizers.flag_sets`).

    The model is drawn *last*: every other dimension first draws a blueprint
    at the largest size any model can need, then is cut to the model (see
    `_optimizers`).  So when the shrinker removes a layer, no later draw moves
    and the rest of the scenario stays as it was: failures shrink to one layer.

    `wrapped`: whether models may be wrapped (activation checkpointing,
    torch.compile; chosen by the seed: `_plans.wrapped_by_seed`); None: as
    the full space does.  A test that searches for one arrangement among many
    turns it off, so that wrapping does not thin its draws.  `mixed_precision`:
    likewise for FSDP plans computing in bfloat16 (`_plans.dressed_by_seed`),
    and `grad_dtype` for models whose gradients are bfloat16
    (`_models.with_grad_dtype_by_seed`).
    """
    runnable = [k for k in plan_kinds if any(plan_accepts(PlanSpec(k), w) is None for w in world_sizes)]
    if not runnable:
        raise ValueError(f"none of the plans {list(plan_kinds)} runs at world sizes {list(world_sizes)}")
    # The optimizers first, then a plan that can run the first of them: so
    # each optimizer is as likely under any set of plans (drawing the plan
    # first would make those that cannot step sharded parameters rare, as
    # most plans shard).  Neither blueprint depends on the plan kind (both
    # are fitted to it), so shrinking the kind toward ``none`` (first in
    # every list) moves no later draw.
    optimizer_bp = draw(optimizer_blueprints(device))
    first = optimizer_bp.optimizers[0].name
    # Pipelines come from the seed (`_as_pipeline`), not from this draw, so that
    # adding them moved no other example and no shrink path; drawn here only
    # when nothing else is asked for.
    sampled = [k for k in runnable if k != "pp"]
    kind = draw(st.sampled_from([k for k in sampled if _runs(first, k)] or sampled)) if sampled else "pp"
    sizes = [w for w in world_sizes if plan_accepts(PlanSpec(kind), w) is None]
    world_size = draw(st.sampled_from(sorted(sizes)))
    plan_bp = draw(plan_blueprints(kind))
    steps = draw(st.integers(min_steps, max_steps))
    seed = draw(st.integers(0, 2**16))
    # A sharding plan all-gathers a unit's parameters as one buffer, so it
    # needs one dtype per unit; mixed dtypes only where nothing is sharded.
    # Sparse gradients only without a plan (see `scenario._refusals.accepts`).
    model = draw(models(mixed_dtypes=kind in MIXED_DTYPE_PLANS, sparse=kind in SPARSE_PLANS))
    if kind_of(first).params == "sparse" and kind in SPARSE_PLANS and not model.sparse_param_fqns():
        # SparseAdam steps only sparse-gradient parameters; few trees have
        # one, so give it one rather than drop it nearly every time.
        model = TreeSpec(model.width, model.layers + (EmbeddingSpec(num=1, sparse=True),), model.dtype)
    if kind in TP_PLANS and not model.linear_fqns():
        # Tensor parallelism splits Linears; most trees without one would
        # be rejected (over half of the TP draws), so give it one to split.
        model = TreeSpec(model.width, model.layers + (LinearSpec(out=2),), model.dtype)
    if kind == "pp" or (kind == "none" and "pp" in runnable and world_size > 1 and pipelined_of_seed(seed)):
        pipelined = _as_pipeline(optimizer_bp, model, world_size, seed, steps, wrapped)
        if pipelined is not None:
            return pipelined
        assume(kind != "pp")  # else the example goes on as plan none
    plan = fit_plan(plan_bp, model, world_size)
    plan = dressed_by_seed(
        plan, model, world_size, seed, steps=steps,
        wrapped=DRAW_WRAPPERS if wrapped is None else wrapped,
        mixed_precision=DRAW_MIXED_PRECISION if mixed_precision is None else mixed_precision,
    )
    # Blueprints are fitted so that this holds; the assume() is a guard, and
    # a plan that rejects many models should fit itself instead.
    assume(plan_accepts(plan, world_size, model, steps) is None)
    # An optimizer that fits no parameter of the model (SparseAdam on a model
    # without sparse parameters) is dropped; rare examples where all are, are
    # rejected.
    optimizers = fit_optimizers(optimizer_bp, model, kind)
    assume(optimizers)
    assert all(o.unsupported_plan(kind) is None for o in optimizers), optimizers
    if DRAW_GRAD_DTYPE if grad_dtype is None else grad_dtype:
        model = with_grad_dtype_by_seed(model, optimizers, plan.kind, seed)
    return Scenario(
        seed=seed,
        world_size=world_size,
        model=model,
        optimizers=optimizers,
        plan=plan,
        steps=steps,
    )


def _as_pipeline(optimizer_bp, model, world_size: int, seed: int, steps: int, wrapped: bool | None) -> Scenario | None:
    """The example as a pipeline (plan ``pp``), or None where it cannot be one.

    A pipeline cuts the top-level layers into one run per rank; most trees
    have fewer than four, so Linears are added to cut.  The optimizers are
    fitted to the plan (LBFGS cannot run in one), and every stage must hold a
    parameter of every optimizer (`_pipeline.pipeline_refusal`).
    """
    tree = model.tree()
    if len(tree.layers) < world_size:
        model = TreeSpec(tree.width, tree.layers + (LinearSpec(out=tree.width),) * (world_size - len(tree.layers)), tree.dtype)
    plan = dressed_by_seed(
        PlanSpec("pp"), model, world_size, seed, steps=steps,
        wrapped=DRAW_WRAPPERS if wrapped is None else wrapped, mixed_precision=False,
    )
    if plan_accepts(plan, world_size, model, steps) is not None:
        return None
    optimizers = fit_optimizers(optimizer_bp, model, "pp")
    if not optimizers or pipeline_refusal(model, world_size, optimizers) is not None:
        return None
    return Scenario(seed=seed, world_size=world_size, model=model, optimizers=optimizers, plan=plan, steps=steps)


def _runs(optimizer: str, kind: str) -> bool:
    """Whether `optimizer` can step under plans of `kind` (SparseAdam: only with sparse gradients)."""
    if kind_of(optimizer).params == "sparse" and kind not in SPARSE_PLANS:
        return False
    return runs_under(optimizer, kind)
