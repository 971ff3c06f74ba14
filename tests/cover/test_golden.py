"""The golden twin: one process, no plan, same global data, same optimizer state.

Checked against real worlds (gloo, via one module-scoped `WorldPool`): the
reference gather of the ranks' trained optimizers equals the twin's full OSD,
bit for bit where no gradient is averaged over several ranks (any plan at
world 1; plan ``none``, where every rank trains the whole batch, at world 2),
and within `golden_tolerance` under DDP and FSDP2 at world 2 and FSDP2+TP at
world 4.  (Bitwise needs
the twin to compute with one thread as ranks do: BatchNorm over a rank's 2 rows
makes the gradients of the layers before it mathematically zero, so what is
computed is rounding noise, which a change in reduction order changes.)
A twin that ignored how data parallelism slices the batch would fail these
(`test_a_whole_batch_twin_would_be_wrong_under_batchnorm`), and so would one
that gave each rank of a TP group its own slice
(`test_golden_matches_fsdp2_tp_whose_tp_groups_share_a_slice`).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import event, example, given, settings

from helpers import golden_tasks as gt
from helpers.regressions import ADAGRAD_EMPTY_FSDP1_PIECE
from osdconform.compare import DTYPE_TOLERANCE, assert_osd_equal, first_difference
from osdconform.golden import golden_full_osd, golden_tolerance, golden_train, golden_workload
from osdconform.harness import WorldPool
from osdconform.reference import full_osd
from osdconform.scenario import (
    BatchNormSpec,
    EmbeddingSpec,
    GroupSpec,
    LinearSpec,
    MLPSpec,
    ModuleDictSpec,
    OptimizerSpec,
    ParamSpec,
    PlanSpec,
    Scenario,
    SequentialSpec,
    TiedLinearSpec,
    TreeSpec,
    UnusedSpec,
)
from osdconform.strategies import full_scenarios as scenarios


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=60) as pool:
        yield pool


def _adam(model, **hp) -> tuple[OptimizerSpec, ...]:
    return (OptimizerSpec("adam", (GroupSpec(model.param_fqns(), tuple(hp.items())),)),)


#: Every awkward part at once: tied, frozen after a step, an unused branch,
#: a bare 1-element param, buffers, an embedding, nesting.
_TREE = TreeSpec(
    width=3,
    layers=(
        EmbeddingSpec(num=4),
        SequentialSpec(children=(LinearSpec(out=5, bias=True), ParamSpec(shape="1-element"))),
        ModuleDictSpec(children=(TiedLinearSpec(bias=True, freeze=1), UnusedSpec(LinearSpec(out=2)))),
        BatchNormSpec(),
        LinearSpec(out=2),
    ),
)
_TREE_SCENARIO = Scenario(seed=5, world_size=2, model=_TREE, optimizers=_adam(_TREE, lr=0.1), steps=3)


@settings(max_examples=8, deadline=None)
@given(scenario=scenarios(world_sizes=(1,), min_steps=1))
@example(scenario=_TREE_SCENARIO.replace(world_size=1))
@example(scenario=_TREE_SCENARIO.replace(world_size=1, plan=PlanSpec("ddp")))
@example(scenario=_TREE_SCENARIO.replace(world_size=1, plan=PlanSpec("fsdp2", shard=("layers.1", "layers.2"))))
# A parameter frozen at build and left out of the optimizer.
@example(
    scenario=Scenario(
        seed=4, world_size=1,
        model=TreeSpec(width=3, layers=(LinearSpec(out=3, bias=True, freeze=0), LinearSpec(out=2))),
        optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.1.weight",)),)),),
        plan=PlanSpec("fsdp2", shard=("layers.0",)), steps=2,
    )
)
# LBFGS steps with a closure, after the other optimizers, as ranks do.
@example(
    scenario=Scenario(
        seed=0, world_size=1, model=TreeSpec(width=1, layers=(LinearSpec(out=1),)),
        optimizers=(OptimizerSpec("lbfgs", (GroupSpec(("layers.0.weight",)),)),), steps=1,
    )
)
# LBFGS over a parameter that gets no gradient: the closure's loss needs no backward.
@example(
    scenario=Scenario(
        seed=0, world_size=1, model=TreeSpec(width=1, layers=(UnusedSpec(LinearSpec(out=1)),)),
        optimizers=(OptimizerSpec("lbfgs", (GroupSpec(("layers.0.weight",)),)),), steps=1,
    )
)
# FSDP1: an unused parameter of a unit whose flat parameter gets a gradient gets a zero one.
@example(
    scenario=Scenario(
        seed=0, world_size=1, model=TreeSpec(width=1, layers=(LinearSpec(out=1), UnusedSpec(LinearSpec(out=1)))),
        optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.0.weight", "layers.1.weight")),)),),
        plan=PlanSpec("fsdp1"), steps=1,
    )
)
# ... and so it does when only a frozen parameter of the unit is used.
@example(
    scenario=Scenario(
        seed=0, world_size=1, model=TreeSpec(width=1, layers=(LinearSpec(out=1, freeze=0), UnusedSpec(LinearSpec(out=1)))),
        optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.1.weight",)),)),),
        plan=PlanSpec("fsdp1"), steps=2,
    )
)
def test_golden_is_bitwise_the_reference_gather_at_world_1(pool, scenario):
    ranks = pool.run(1, gt.trained_full_osd, scenario)
    assert_osd_equal(golden_full_osd(scenario), ranks[0], context=f"golden vs world 1 ({scenario.plan.kind})")


@settings(max_examples=4, deadline=None)
@given(scenario=scenarios(world_sizes=(2,), plan_kinds=("none",), min_steps=1))
@example(scenario=_TREE_SCENARIO)
def test_golden_is_bitwise_without_data_parallelism_at_world_2(pool, scenario):
    """Plan ``none``: every rank trains the whole global batch, as the twin does."""
    ranks = pool.run(2, gt.trained_full_osd, scenario)
    for rank, osd in enumerate(ranks):
        assert_osd_equal(golden_full_osd(scenario), osd, context=f"golden vs rank {rank}")


@settings(max_examples=12, deadline=None)
@given(scenario=scenarios(world_sizes=(2,), plan_kinds=("ddp", "fsdp2"), min_steps=1))
@example(scenario=_TREE_SCENARIO.replace(plan=PlanSpec("ddp")))
@example(scenario=_TREE_SCENARIO.replace(plan=PlanSpec("fsdp2", shard=("layers.1", "layers.2"))))
@example(scenario=_TREE_SCENARIO.replace(model=TreeSpec(_TREE.width, _TREE.layers, "bfloat16"), plan=PlanSpec("fsdp2")))
@example(scenario=_TREE_SCENARIO.replace(model=TreeSpec(_TREE.width, _TREE.layers, "float64"), plan=PlanSpec("ddp")))
@example(scenario=ADAGRAD_EMPTY_FSDP1_PIECE)  # see tests/helpers/regressions.py
# LBFGS's closure under DDP returns the mean loss of the ranks; Adam steps before it.
@example(
    scenario=Scenario(
        seed=2, world_size=2, model=TreeSpec(width=2, layers=(LinearSpec(out=2), LinearSpec(out=1))),
        optimizers=(
            OptimizerSpec("adam", (GroupSpec(("layers.0.weight",)),)),
            OptimizerSpec("lbfgs", (GroupSpec(("layers.1.weight",)),)),
        ),
        plan=PlanSpec("ddp"), steps=2,
    )
)
def test_golden_matches_data_parallel_training_at_world_2(pool, scenario):
    ranks = pool.run(2, gt.trained_full_osd, scenario)
    expected = golden_full_osd(scenario)
    tolerance = golden_tolerance(scenario.model)
    for rank, osd in enumerate(ranks):
        assert_osd_equal(expected, osd, tolerance=tolerance, context=f"golden vs rank {rank} ({scenario.plan.kind})")
    if first_difference(expected, ranks[0]) is None:
        event("bitwise equal")


def test_a_whole_batch_twin_would_be_wrong_under_batchnorm(pool):
    """Under DDP each rank normalises its own rows; a twin that trained on the
    whole batch at once would hold other state, far beyond any tolerance."""
    model = TreeSpec(width=2, layers=(LinearSpec(out=3), BatchNormSpec(), LinearSpec(out=1)))
    scenario = Scenario(seed=1, world_size=2, model=model, optimizers=_adam(model), plan=PlanSpec("ddp"), steps=2)
    ranks = pool.run(2, gt.trained_full_osd, scenario)
    tolerance = golden_tolerance(model)
    assert_osd_equal(golden_full_osd(scenario), ranks[0], tolerance=tolerance)
    whole_batch = golden_workload(scenario, torch.device("cpu"))
    golden_train(whole_batch, scenario.replace(plan=PlanSpec()), scenario.steps)
    assert first_difference(full_osd(whole_batch.module, whole_batch.optimizers), ranks[0], tolerance=tolerance)


def test_golden_matches_fsdp2_tp_whose_tp_groups_share_a_slice(pool):
    """Under FSDP2+TP (2 x 2 mesh) the two ranks of a TP group train on one
    slice of twice the rows; with a BatchNorm a twin that took one slice per
    rank (as for DDP) would normalise over other rows and hold other state."""
    model = TreeSpec(width=2, layers=(LinearSpec(out=4), BatchNormSpec(), LinearSpec(out=2)))
    plan = PlanSpec("fsdp2+tp", tp=(("layers.0", "colwise"), ("layers.2", "rowwise")))
    scenario = Scenario(seed=3, world_size=4, model=model, optimizers=_adam(model), plan=plan, steps=2)
    ranks = pool.run(4, gt.trained_full_osd, scenario)
    expected = golden_full_osd(scenario)
    tolerance = golden_tolerance(model)
    for rank, osd in enumerate(ranks):
        assert_osd_equal(expected, osd, tolerance=tolerance, context=f"golden vs rank {rank}")
    assert first_difference(golden_full_osd(scenario.replace(plan=PlanSpec("ddp"))), ranks[0], tolerance=tolerance)


def test_golden_state_is_the_trained_state():
    """The twin really trains: state for every used, trainable parameter; none for
    unused or frozen-at-build ones; the MLP shorthand works as well."""
    osd = golden_full_osd(_TREE_SCENARIO)
    assert set(osd["state"]) == set(_TREE.param_fqns()) - set(_TREE.unused_param_fqns())
    assert all(int(v["step"]) == 3 for k, v in osd["state"].items() if not k.startswith("layers.2.a"))
    assert all(int(v["step"]) == 1 for k, v in osd["state"].items() if k.startswith("layers.2.a"))  # frozen after 1
    mlp = MLPSpec(dims=(2, 3), bias=(True,))
    mlp_osd = golden_full_osd(Scenario(seed=0, world_size=1, model=mlp, optimizers=_adam(mlp), steps=1))
    assert set(mlp_osd["state"]) == {"layers.0.weight", "layers.0.bias"}


def test_mixed_models_get_the_tolerance_of_their_least_precise_dtype():
    mixed = TreeSpec(width=1, layers=(LinearSpec(1, dtype="bfloat16"), LinearSpec(1)), dtype="float64")
    assert golden_tolerance(mixed)[torch.float64] == DTYPE_TOLERANCE[torch.bfloat16]
    plain = TreeSpec(width=1, layers=(LinearSpec(1),), dtype="float64")
    assert golden_tolerance(plain)[torch.float64] == DTYPE_TOLERANCE[torch.float64]
