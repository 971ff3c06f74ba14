"""The mixed-precision dimensions (issue 14, item 3): FSDP plans that compute in
bfloat16, and models whose float32 parameters take bfloat16 gradients.

FSDP mixed precision: the builder (the units really compute in bfloat16 over
float32 shards, with the policy torch documents), the golden twin (bit for bit
what FSDP1, FSDP2 and FSDP2+TP hold at world 2 and 4, and a twin at full
precision would be out of tolerance, so the twin's casts are needed), and the
strategies (derived from the seed in the full space, so turning the dimension
on moved no other draw; never in the core space).

Gradient dtype (``TreeSpec.grad_dtype``, ``Tensor.grad_dtype``): the spec
(repr, tags, words), the builder, which optimizers can step such gradients
(the catalogue's table, checked against torch), the refusal of every plan but
none, and the strategies (seed-derived as above; a reshard target under a plan
goes on with the parameters' own gradient dtype).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from helpers import golden_tasks as gt
from osdconform.compare import DTYPE_TOLERANCE, first_difference
from osdconform.golden import golden_full_osd, golden_tolerance
from osdconform.harness import WorldPool
from osdconform.scenario import (
    EmbeddingSpec,
    GroupSpec,
    LayerNormSpec,
    LinearSpec,
    OptimizerSpec,
    ParamSpec,
    PlanSpec,
    Scenario,
    SequentialSpec,
    TiedLinearSpec,
    TreeSpec,
)
from osdconform.scenario._catalogue import GRAD_DTYPE_OPTIMIZERS, OPTIMIZER_NAMES, optimizer_class
from osdconform.scenario._plans import MIXED_PRECISION_PLANS, MIXED_PRECISION_TAG
from osdconform.scenario._refusals import model_for_plan
from osdconform.strategies import core_scenarios, full_scenarios
from osdconform.strategies._models import grad_dtype_of_seed
from osdconform.strategies._plans import mixed_precision_of_seed

#: Linear with a bias, LayerNorm, an embedding, a nested unit with a bare
#: parameter, a tied pair: every layer kind mixed precision casts.
MODEL = TreeSpec(
    width=3,
    layers=(
        LinearSpec(out=4, bias=True), LayerNormSpec(), EmbeddingSpec(num=3),
        SequentialSpec((LinearSpec(out=2), ParamSpec())), TiedLinearSpec(),
    ),
)


def _scenario(plan: PlanSpec, world_size: int) -> Scenario:
    adam = OptimizerSpec("adam", (GroupSpec(MODEL.param_fqns()),))
    return Scenario(seed=5, world_size=world_size, model=MODEL, optimizers=(adam,), plan=plan, steps=2)


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=120) as pool:
        yield pool


def _units_compute_in(ctx, scenario: Scenario):
    """The dtype a Linear's output has in training, and the parameters' dtypes after it."""
    from osdconform.scenario import build_workload, train

    workload = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    seen = []
    linear = workload.module.get_submodule("layers.0")
    linear.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    train(workload, 1)
    return seen[0], {p.dtype for p in workload.module.parameters()}


@pytest.mark.parametrize(
    "plan, world_size",
    [
        (PlanSpec("fsdp2", shard=("layers.3",), mixed_precision=True), 2),
        (PlanSpec("fsdp1", shard=("layers.3",), mixed_precision=True), 2),
        (PlanSpec("fsdp2+tp", tp=(("layers.0", "colwise"),), mixed_precision=True), 4),
    ],
    ids=["fsdp2", "fsdp1", "fsdp2+tp"],
)
def test_the_twin_computes_as_fsdp_mixed_precision_does(pool, plan, world_size):
    scenario = _scenario(plan, world_size)
    compute, stored = pool.run(world_size, _units_compute_in, scenario)[0]
    assert compute == torch.bfloat16 and stored == {torch.float32}
    ranks = pool.run(world_size, gt.trained_full_osd, scenario)
    expected = golden_full_osd(scenario)
    for rank, osd in enumerate(ranks):
        # Bitwise: the same bfloat16 kernels on the same values, gradients averaged
        # as the twin averages them (measured: equal on every rank).
        assert first_difference(expected, osd) is None, f"rank {rank}"
    full_precision = golden_full_osd(scenario.replace(plan=dataclasses.replace(plan, mixed_precision=False)))
    assert first_difference(full_precision, ranks[0], tolerance=golden_tolerance(MODEL)) is not None
    assert golden_tolerance(MODEL, plan)[torch.float32] == DTYPE_TOLERANCE[torch.bfloat16]


_DRAWS = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))


def _drawn(**kw) -> list[Scenario]:
    out: list[Scenario] = []

    @_DRAWS
    @given(full_scenarios(**kw))
    def collect(sc):
        out.append(sc)

    collect()
    return out


def test_the_full_space_chooses_mixed_precision_by_the_seed_and_moves_no_other_draw():
    """Mixed precision comes from the example's seed (`mixed_precision_of_seed`), on
    FSDP plans only and where torch can train it; with it off, a derandomized
    run draws the same scenarios in the same order, less the bfloat16."""
    on, off = _drawn(), _drawn(mixed_precision=False)
    assert [dataclasses.replace(s.plan, mixed_precision=False) for s in on] == [s.plan for s in off]
    assert [s.replace(plan=off_s.plan) for s, off_s in zip(on, off)] == off
    mixed = [s for s in on if s.plan.mixed_precision]
    assert mixed and all(MIXED_PRECISION_TAG in s.features for s in mixed)
    assert all(s.plan.kind in MIXED_PRECISION_PLANS and mixed_precision_of_seed(s.seed) for s in mixed)
    assert not mixed_precision_of_seed(0)
    fsdp = [s for s in on if s.plan.kind in MIXED_PRECISION_PLANS]
    assert 0.1 < len(mixed) / len(fsdp) < 0.7, (len(mixed), len(fsdp))


def test_the_core_space_never_computes_in_bfloat16():
    @_DRAWS
    @given(core_scenarios(world_sizes=(1, 2, 3, 4), plan_kinds=("none", "ddp", "fsdp2")))
    def core(sc):
        assert not sc.plan.mixed_precision, sc

    core()


# -- gradient dtype ---------------------------------------------------------------

GRAD_MODEL = TreeSpec(width=3, layers=(LinearSpec(out=4, bias=True), LinearSpec(out=2)), grad_dtype="bfloat16")


def test_a_grad_dtype_model_says_so_and_rebuilds():
    namespace: dict = {}
    exec("from osdconform.scenario import *", namespace)
    assert eval(repr(GRAD_MODEL), namespace) == GRAD_MODEL
    plain = GRAD_MODEL.__class__(GRAD_MODEL.width, GRAD_MODEL.layers)
    assert "grad_dtype" not in repr(plain)  # reprs written before the field still rebuild
    assert GRAD_MODEL.features() == plain.features() | {"grad dtype:bfloat16"}
    assert "gradients in bfloat16" in GRAD_MODEL.describe()
    with pytest.raises(ValueError, match="unknown grad_dtype 'half'"):
        TreeSpec(width=1, layers=(LinearSpec(out=1),), grad_dtype="half")


def test_the_built_parameters_take_bfloat16_gradients():
    from osdconform.scenario import build_model

    module = build_model(GRAD_MODEL, torch.device("cpu"))
    module((torch.randn(2, 3), torch.zeros(2, dtype=torch.long))).square().mean().backward()
    assert {(p.dtype, p.grad.dtype) for p in module.parameters()} == {(torch.float32, torch.bfloat16)}


@pytest.mark.parametrize("name", [n for n in OPTIMIZER_NAMES if n != "sparseadam"])
def test_the_table_of_optimizers_that_step_bfloat16_gradients_is_torchs(name):
    """`GRAD_DTYPE_OPTIMIZERS` holds exactly the optimizers that step twice on
    float32 weights with bfloat16 gradients (a newer torch that changes it fails here)."""
    param = torch.nn.Parameter(torch.randn(3, 3))
    param.grad_dtype = torch.bfloat16
    optim = optimizer_class(name)([param], lr=0.01)

    def closure():
        optim.zero_grad()
        loss = param.to(torch.bfloat16).square().sum()
        loss.backward()
        return loss

    try:
        for _ in range(2):
            optim.step(closure)
        stepped = True
    except RuntimeError:
        stepped = False
    assert stepped == (name in GRAD_DTYPE_OPTIMIZERS)


def test_only_plan_none_and_optimizers_that_can_step_them_take_a_grad_dtype():
    from osdconform.scenario import plan_accepts

    assert plan_accepts(PlanSpec(), 1, GRAD_MODEL) is None
    assert "train only without a plan" in plan_accepts(PlanSpec("ddp"), 2, GRAD_MODEL)
    assert model_for_plan(PlanSpec("ddp"), 2, GRAD_MODEL).grad_dtype is None
    assert model_for_plan(PlanSpec(), 2, GRAD_MODEL) is GRAD_MODEL
    adam = OptimizerSpec("adam", (GroupSpec(GRAD_MODEL.param_fqns()),))
    with pytest.raises(ValueError, match="gradients are bfloat16: Adam cannot step"):
        Scenario(seed=1, world_size=1, model=GRAD_MODEL, optimizers=(adam,))
    fused = OptimizerSpec("sgd", (GroupSpec(GRAD_MODEL.param_fqns()),), flags=("fused",))
    with pytest.raises(ValueError, match="fused SGD cannot step"):
        Scenario(seed=1, world_size=1, model=GRAD_MODEL, optimizers=(fused,))


def test_the_full_space_chooses_a_grad_dtype_by_the_seed_and_moves_no_other_draw():
    on, off = _drawn(), _drawn(grad_dtype=False)
    plain = [s.replace(model=dataclasses.replace(s.model, grad_dtype=None)) for s in on]
    assert plain == off
    chosen = [s for s in on if s.model.grad_dtype]
    assert chosen and all("grad dtype:bfloat16" in s.features and grad_dtype_of_seed(s.seed) for s in chosen)
    assert all(s.plan.kind == "none" and not any(o.unsupported_grad_dtype() for o in s.optimizers) for s in chosen)
    assert not grad_dtype_of_seed(0)

    @_DRAWS
    @given(core_scenarios(world_sizes=(1, 2), plan_kinds=("none", "ddp", "fsdp2")))
    def core(sc):
        assert getattr(sc.model, "grad_dtype", None) is None, sc

    core()
