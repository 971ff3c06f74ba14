"""The reference under every plan, on real process groups.

For each plan: train, gather the full OSD with the reference, and check it
against the golden twin (`osdconform.golden`: the same scenario
trained without a plan in this process, on the same rank slices of the batch
and with the gradients the plan leaves, such as FSDP1's zero gradients for
the unused parameters of a unit: a plan must not change what training
computes, and the gather must put every element where it belongs), then load
the full and the sharded OSD into fresh objects and gather again (load
inverts gather).  FSDP1 and ZeRO are also checked against torch's own state
dicts, and FSDP1's ShardedTensors against the reference's own unshard.
Rank-side code: ``tests/helpers/plan_tasks.py``.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import example, given, settings

from helpers import plan_tasks as pt
from helpers.regressions import ADAGRAD_EMPTY_FSDP1_PIECE, FSDP1_FORWARD_WITHOUT_BACKWARD
from osdconform import reference as ref
from osdconform.compare import assert_osd_equal
from osdconform.golden import golden_full_osd
from osdconform.harness import WorldPool
from osdconform.scenario import (
    EmbeddingSpec,
    GroupSpec,
    LinearSpec,
    MLPSpec,
    OptimizerSpec,
    ParamSpec,
    PlanSpec,
    Scenario,
    TreeSpec,
    UnusedSpec,
)
from osdconform.strategies import full_scenarios as scenarios

#: Plans change the reduction order of gradients, never what is computed.
TOLERANCE = {torch.float32: (1e-4, 1e-6), torch.float64: (1e-9, 1e-12), torch.bfloat16: (5e-2, 1e-2)}
_PRECISION_ORDER = (torch.bfloat16, torch.float32, torch.float64)


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=90) as pool:
        yield pool


def golden_twin(scenario: Scenario) -> dict:
    """The twin's full OSD: it trains as the plan's ranks do (rank slices, the plan's gradients)."""
    return golden_full_osd(scenario)


def tolerance(scenario: Scenario) -> dict:
    """`TOLERANCE`, with `golden_tolerance`'s rule: a model that mixes dtypes gets its least precise one's."""
    used = {getattr(torch, name) for name in scenario.model.dtypes()}
    loosest = next(d for d in _PRECISION_ORDER if d in used or d == torch.float64)
    return {d: TOLERANCE[loosest] for d in TOLERANCE}


_MODEL = MLPSpec(dims=(3, 5, 2), bias=(True, True))
_TWO_GROUPS = (
    OptimizerSpec(
        "adam",
        (
            GroupSpec(("layers.0.weight",), (("lr", 0.1),)),
            GroupSpec(("layers.0.bias", "layers.1.weight", "layers.1.bias"), (("betas", (0.5, 0.9)),)),
        ),
    ),
)
#: One scenario per layout the reference must read, each with uneven pieces.
CASES = {
    "ddp": (2, PlanSpec("ddp")),
    "fsdp1 unit": (2, PlanSpec("fsdp1", shard=("layers.0",))),
    "fsdp1 shard_grad_op w3": (3, PlanSpec("fsdp1", sharding_strategy="SHARD_GRAD_OP")),
    "fsdp1 no_shard": (2, PlanSpec("fsdp1", sharding_strategy="NO_SHARD")),
    "fsdp1 hybrid": (4, PlanSpec("fsdp1", shard=("layers.1",), sharding_strategy="HYBRID_SHARD")),
    "fsdp2 no reshard": (3, PlanSpec("fsdp2", shard=("layers.0",), reshard_after_forward=False)),
    "hsdp": (4, PlanSpec("fsdp2", mesh_2d=True)),
    "tp": (4, PlanSpec("tp", tp=(("layers.0", "colwise"), ("layers.1", "rowwise")))),
    "fsdp2+tp strided": (4, PlanSpec("fsdp2+tp", shard=("layers.0",), tp=(("layers.0", "colwise"),))),
    "zero": (3, PlanSpec("zero")),
    "dtensor 1-D": (3, PlanSpec("dtensor", placements=(("layers.0.weight", ("S1",)), ("layers.1.bias", ("S0",))))),
    "dtensor 2-D": (
        4,
        PlanSpec("dtensor", mesh_2d=True, placements=(("layers.0.weight", ("S1", "S1")), ("layers.1.weight", ("R", "S0")))),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_gather_matches_the_golden_twin_and_load_inverts_it(pool, case):
    world, plan = CASES[case]
    scenario = Scenario(seed=3, world_size=world, model=_MODEL, optimizers=_TWO_GROUPS, plan=plan, steps=2)
    results = pool.run(world, pt.load_gather, scenario)
    assert_osd_equal(golden_twin(scenario), results[0]["full"], tolerance=tolerance(scenario), context=f"{case}: golden twin")
    for r in results[1:]:
        assert_osd_equal(results[0]["full"], r["full"], context="every rank gathers the same")
    assert len(results[0]["full"][ref.STATE]) == 4


def test_the_layouts_are_what_the_plans_promise(pool):
    """The cases really exercise the layouts: strided shards, 1-D pieces, partitions."""
    def layouts(case):
        world, plan = CASES[case]
        scenario = Scenario(seed=3, world_size=world, model=_MODEL, optimizers=_TWO_GROUPS, plan=plan, steps=1)
        return pool.run(world, pt.load_gather, scenario)

    strided = layouts("fsdp2+tp strided")[3]["layouts"]["layers.0.weight.exp_avg"]
    assert strided == ("dtensor", ("_S(0, 2)", "S(0)"), (1, 3))  # 5 rows: TP 3 + 2, then FSDP 2 + 1, 1 + 1
    pieces = [r["layouts"].get("layers.0.weight.exp_avg") for r in layouts("fsdp1 unit")]
    assert pieces == [("tensor", (11,)), ("tensor", (4,))]  # 15 elements, padded flat param of 22
    zero = layouts("zero")
    assert sorted(r["local_entries"] for r in zero) == [1, 1, 2]  # each rank holds its partition only
    assert layouts("dtensor 2-D")[3]["layouts"]["layers.0.weight.exp_avg"] == ("dtensor", ("S(1)", "S(1)"), (5, 0))


@settings(max_examples=8, deadline=None)
@given(scenario=scenarios(world_sizes=(1, 2, 4), min_steps=1))
@example(
    scenario=Scenario(
        seed=0, world_size=4, model=MLPSpec(dims=(2, 7), bias=(True,), dtype="bfloat16"),
        optimizers=(OptimizerSpec("sgd", (GroupSpec(("layers.0.weight", "layers.0.bias"), (("momentum", 0.9),)),)),),
        plan=PlanSpec("fsdp1", sharding_strategy="HYBRID_SHARD"), steps=1,
    )
)
# FSDP1 gives an unused parameter of a unit that gets a gradient a zero one (the twin too).
@example(
    scenario=Scenario(
        seed=0, world_size=1, model=TreeSpec(width=1, layers=(LinearSpec(out=1), UnusedSpec(LinearSpec(out=1)))),
        optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.0.weight", "layers.1.weight")),)),),
        plan=PlanSpec("fsdp1"), steps=1,
    )
)
@example(scenario=ADAGRAD_EMPTY_FSDP1_PIECE)  # see tests/helpers/regressions.py
# A 0-d parameter, a replicated DTensor: its moments are 0-d DTensors, its step a plain tensor.
@example(
    scenario=Scenario(
        seed=0, world_size=2, model=TreeSpec(width=1, layers=(ParamSpec(shape="0-d"),)),
        optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.p0",)),)),),
        plan=PlanSpec("dtensor"), steps=1,
    )
)
@example(
    scenario=Scenario(
        seed=0, world_size=2, model=TreeSpec(width=1, layers=(EmbeddingSpec(num=1),)),
        optimizers=(
            OptimizerSpec(
                "adagrad",
                (
                    GroupSpec(("layers.0.weight",), (("initial_accumulator_value", 0.1),)),
                    GroupSpec((), (("weight_decay", 0.01), ("initial_accumulator_value", 0.1))),
                ),
            ),
        ),
        plan=PlanSpec("fsdp1"), steps=1,
    )
)
@example(scenario=FSDP1_FORWARD_WITHOUT_BACKWARD)
def test_any_drawn_plan(pool, scenario):
    results = pool.run(scenario.world_size, pt.load_gather, scenario)
    assert_osd_equal(golden_twin(scenario), results[0]["full"], tolerance=tolerance(scenario), context="golden twin")


# -- against torch's own (allowed here: the tests judge the oracle) ------------------


@pytest.mark.parametrize(
    "case, kind",
    [("fsdp1 unit", "ShardedTensor"), ("fsdp1 hybrid", "DTensor"), ("fsdp1 shard_grad_op w3", "ShardedTensor")],
)
def test_fsdp1_gather_and_sharded_state_agree_with_fsdp(pool, case, kind):
    world, plan = CASES[case]
    scenario = Scenario(seed=5, world_size=world, model=_MODEL, optimizers=_TWO_GROUPS, plan=plan, steps=2)
    results = pool.run(world, pt.fsdp1_against_torch, scenario)
    assert all(r["state_entries"] == 4 for r in results)
    assert all(r["sharded_values"] == [kind] for r in results)  # the ShardedTensor / DTensor path ran


def test_zero_gather_agrees_with_consolidate(pool):
    world, plan = CASES["zero"]
    scenario = Scenario(seed=5, world_size=world, model=_MODEL, optimizers=_TWO_GROUPS, plan=plan, steps=2)
    results = pool.run(world, pt.zero_against_torch, scenario)
    assert results[0] == {"state_entries": 4, "rank0_local_entries": results[0]["rank0_local_entries"]}
    assert results[0]["rank0_local_entries"] < 4  # rank 0 alone does not hold it all


def test_flat_parameters_are_refused_with_the_reason(pool):
    messages = pool.run(2, pt.refuses_flat_params)
    assert "FSDP1 flat parameter '_flat_param'" in messages[0]
    assert "known only to FSDP's internals" in messages[0]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
@pytest.mark.parametrize(
    "plan",
    [
        PlanSpec("fsdp2", mesh_2d=True),
        PlanSpec("fsdp2+tp", tp=(("layers.0", "colwise"),)),
        PlanSpec("fsdp1", sharding_strategy="HYBRID_SHARD"),
        PlanSpec("dtensor", mesh_2d=True, placements=(("layers.0.weight", ("S0", "S1")),)),
    ],
    ids=lambda p: p.kind + ("-2d" if p.mesh_2d else ""),
)
def test_a_warm_world_does_not_pile_up_process_groups(pool, plan):
    """Each 2-D mesh creates a process group per dim (three gloo threads
    each, never destroyed); building one per example slowed a warm world to a
    crawl after a few hundred examples.  Builds reuse one mesh per shape."""
    model = TreeSpec(width=4, layers=(LinearSpec(out=4, bias=True),))
    adam = OptimizerSpec("adam", (GroupSpec(model.param_fqns()),))
    scenario = Scenario(seed=0, world_size=4, model=model, optimizers=(adam,), plan=plan, steps=0)
    for rank, counts in enumerate(pool.run(4, pt.threads_after_builds, scenario, 4)):
        assert counts[1:] == counts[:1] * 3, f"rank {rank}: threads after each build {counts}"
