"""The named conditions of expected-failure predicates, against the golden twin.

`state_after_training` works out from specs alone which parameters hold
optimizer state after training; the golden twin trains the scenario in this
process and shows which do.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings

from osdconform import strategies as ost
from osdconform._xfail_predicates import state_after_training, trainable_at_end
from osdconform.scenario._golden import golden_full_osd


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
