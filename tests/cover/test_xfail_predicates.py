"""The named conditions of expected-failure predicates, against the golden twin and torch.

`state_after_training` works out from specs alone which parameters hold
optimizer state after training; the golden twin trains the scenario in this
process and shows which do.  The conditions about torch's own behaviour
(which strided shards ``distribute_tensor`` refuses, when FSDP1's get
refuses an optimizer) are checked against torch in real worlds.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings

import _predicate_tasks as pt
from osdconform import strategies as ost
from osdconform.expected_failures._conditions import (
    fsdp1_unit_partly_in_state,
    state_after_training,
    trainable_at_end,
    uneven_strided_params,
)
from osdconform.harness import WorldPool
from osdconform.scenario import GroupSpec, LinearSpec, OptimizerSpec, PlanSpec, Scenario, TreeSpec
from osdconform.golden import golden_full_osd


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=60) as pool:
        yield pool


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(ost.full_scenarios())
def test_state_after_training_names_the_parameters_the_twin_keeps_state_for(scenario):
    expected = set()
    for opt in scenario.optimizers:
        expected |= state_after_training(scenario, opt)
    assert set(golden_full_osd(scenario)["state"]) == expected


def test_a_parameter_frozen_after_k_steps_still_trains_until_step_k():
    from osdconform.scenario import GroupSpec, LinearSpec, OptimizerSpec, Scenario, TreeSpec, build_workload, train

    model = TreeSpec(width=1, layers=(LinearSpec(out=1, freeze=2),))
    opt = OptimizerSpec("sgd", (GroupSpec(model.param_fqns(), (("momentum", 0.9),)),))
    for steps, trainable in ((1, True), (2, True), (3, False)):
        s = Scenario(seed=0, world_size=1, model=model, optimizers=(opt,), steps=steps)
        assert ("layers.0.weight" in trainable_at_end(s)) is trainable
        workload = build_workload(s, rank=0, device=torch.device("cpu"))
        train(workload, steps)
        assert dict(workload.module.named_parameters())["layers.0.weight"].requires_grad is trainable


_FROZEN_BESIDE_TRAINED = TreeSpec(width=2, layers=(LinearSpec(out=2, freeze=0), LinearSpec(out=1)))
_TWO_LAYERS = TreeSpec(width=2, layers=(LinearSpec(out=2), LinearSpec(out=1)))
_TWO_COLWISE_LINEARS = TreeSpec(width=3, layers=(LinearSpec(out=6, bias=True), LinearSpec(out=4, bias=True)))


@settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(ost.full_scenarios(world_sizes=(4,), plan_kinds=("fsdp2+tp",)))
# Linear(3, 6) colwise on 2 x 2: TP 3 + 3, each 2 + 1 -> uneven; Linear(6, 4): 4 rows -> even.
@example(
    Scenario(
        seed=0, world_size=4, model=_TWO_COLWISE_LINEARS,
        optimizers=(OptimizerSpec("adam", (GroupSpec(_TWO_COLWISE_LINEARS.param_fqns()),)),),
        plan=PlanSpec("fsdp2+tp", tp=(("layers.0", "colwise"), ("layers.1", "colwise"))),
    )
)
def test_uneven_strided_params_are_those_distribute_tensor_refuses(pool, scenario):
    refused = pool.run(4, pt.strided_pieces_torch_refuses, scenario)[0]
    assert set(refused) == set(uneven_strided_params(scenario))


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(ost.full_scenarios(world_sizes=(1,), plan_kinds=("fsdp1",)))
# One unit: a layer frozen at build (no state, fine) beside one Adam trains.
@example(
    Scenario(
        seed=0, world_size=1, model=_FROZEN_BESIDE_TRAINED,
        optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.1.weight",)),)),),
        plan=PlanSpec("fsdp1"), steps=1,
    )
)
# One unit: a plain SGD group (no state) beside a momentum group (state): refused.
@example(
    Scenario(
        seed=0, world_size=1, model=_TWO_LAYERS,
        optimizers=(
            OptimizerSpec("sgd", (GroupSpec(("layers.0.weight",)), GroupSpec(("layers.1.weight",), (("momentum", 0.9),)))),
        ),
        plan=PlanSpec("fsdp1"), steps=1,
    )
)
def test_fsdp1_unit_partly_in_state_is_when_dsd_get_refuses(pool, scenario):
    """At world 1 (the rule does not depend on the world; at 2 a get that
    fails on one rank only leaves the other in a collective)."""
    error = pool.run(scenario.world_size, pt.dsd_get_error, scenario)[0]
    refused = error is not None and "is not in the optimizer state" in error
    if error is not None and not refused:
        event("another defect stopped the get first (recorded elsewhere)")
        return
    event(f"refused: {refused}")
    assert refused == fsdp1_unit_partly_in_state(scenario), error
