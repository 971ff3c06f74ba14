"""The mixed-precision dimension: FSDP plans that compute in bfloat16 (issue 14, item 3).

The builder (the units really compute in bfloat16 over float32 shards, with
the policy torch documents), the golden twin (bit for bit what FSDP1, FSDP2
and FSDP2+TP hold at world 2 and 4, and a twin at full precision would be
out of tolerance, so the twin's casts are needed), and the strategies
(derived from the seed in the full space, so turning the dimension on moved
no other draw; never in the core space).
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
from osdconform.scenario._plans import MIXED_PRECISION_PLANS, MIXED_PRECISION_TAG
from osdconform.strategies import core_scenarios, full_scenarios
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
