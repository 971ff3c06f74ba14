"""The conditions of torch-dcp under a pipeline (`_conditions_pipeline`, T72), against DCP itself.

Which stage's value of a shared param-group key a DCP save keeps decides
what each stage loses, so the model of DCP's de-duplication (`kept_by`) is
checked against DCP's own planner: on the OSDs the model works from, and,
in real worlds, on what torch-dsd's get returns on each stage after
training (the torch-dcp backend's save), planned by ``DefaultSavePlanner``
and de-duplicated by ``dedup_save_plans``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings

from helpers import predicate_tasks as pt
from osdconform import strategies as ost
from osdconform.expected_failures._conditions_pipeline import (
    dcp_save_lists_a_key_twice,
    dcp_stage_loads_group_of_other_size,
    dcp_stage_loads_other_hparams,
    dcp_stage_loses_group_hparams,
    kept_by,
    saved_osds,
)
from osdconform.harness import WorldPool
from osdconform.scenario import (
    GroupSpec,
    LinearSpec,
    OptimizerSpec,
    ParamSpec,
    PlanSpec,
    Scenario,
    TiedLinearSpec,
    TreeSpec,
)
from osdconform.scenario._optimizers import TensorValue
from osdconform.scenario._pipeline import stage_views

#: Pipelines of the full space (plan ``none`` on several ranks becomes one by the seed).
PIPELINES = ost.full_scenarios(plan_kinds=("none", "pp"), world_sizes=(2, 3, 4)).filter(lambda s: s.plan.kind == "pp")
SETTINGS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=120) as pool:
        yield pool


def _local_plans(pipeline: Scenario) -> list:
    """DCP's own local plans of the OSDs `kept_by` works from."""
    return [pt.dcp_local_plan(osd, coordinator=rank == 0) for rank, osd in enumerate(saved_osds(pipeline))]


def _planned_by_dcp(pipeline: Scenario) -> dict:
    """DCP's own planner and de-duplication over the OSDs `kept_by` works from."""
    return pt.dcp_kept(_local_plans(pipeline))


def _pipeline(model: TreeSpec, groups, steps: int = 2, world_size: int = 2) -> Scenario:
    return Scenario(seed=3, model=model, optimizers=(OptimizerSpec("sgd", groups),), world_size=world_size,
                    steps=steps, plan=PlanSpec("pp"))


def test_a_stage_with_more_state_bytes_loses_every_shared_key_to_its_peer():
    """Stage 0's momentum (bytes) comes first in DCP's walk, so stage 1 keeps
    every key both list; with no state at all the keys alternate (ties go to
    the lowest rank, and each key counts one)."""
    model = TreeSpec(3, (LinearSpec(out=3), LinearSpec(out=3)))
    momentum = _pipeline(model, (GroupSpec(model.param_fqns(), (("momentum", 0.9),)),))
    shared = {k: r for k, r in kept_by(momentum).items() if ".param_groups." in k[0]}
    assert set(shared.values()) == {1}
    plain = _pipeline(model, (GroupSpec(model.param_fqns()),))
    order = [r for k, r in kept_by(plain).items() if ".param_groups." in k[0]]
    assert order[:4] == [0, 1, 0, 1]
    assert kept_by(momentum) == _planned_by_dcp(momentum) and kept_by(plain) == _planned_by_dcp(plain)


def test_what_each_stage_loses_follows_from_what_dcp_kept():
    """SGD with momentum (so the template holds state), stage 1 keeping every
    shared key: stage 0's group gets stage 1's ``params`` and loses its
    hyperparameters; stage 1 keeps its own."""
    model = TreeSpec(3, (LinearSpec(out=3), ParamSpec(), LinearSpec(out=3)))
    fqns = model.param_fqns()
    scenario = _pipeline(model, (GroupSpec(fqns, (("momentum", 0.9),)),))
    first, second = stage_views(scenario)
    assert dcp_stage_loses_group_hparams(first, scenario) and not dcp_stage_loses_group_hparams(second, scenario)
    assert not dcp_stage_loads_other_hparams(second, scenario)
    assert not any(dcp_stage_loads_group_of_other_size(v, scenario) for v in (first, second))


def test_a_stage_with_a_tied_parameter_loads_a_group_of_another_size():
    """Adagrad (state from its constructor, so the template holds state):
    stage 0's group holds a tied parameter, and where stage 1 kept its
    ``params`` DSD leaves the tied parameter out of the group it builds."""
    model = TreeSpec(1, (TiedLinearSpec(), LinearSpec(out=1)))
    scenario = Scenario(seed=1, world_size=2, model=model, plan=PlanSpec("pp"), steps=1,
                        optimizers=(OptimizerSpec("adagrad", (GroupSpec(model.param_fqns()),)),))
    first, second = stage_views(scenario)
    assert dcp_stage_loads_group_of_other_size(first, scenario)
    assert not dcp_stage_loses_group_hparams(first, scenario)
    assert not any(dcp_stage_loads_group_of_other_size(v, scenario) for v in (second,))


def test_a_key_that_is_a_tensor_on_one_stage_only_is_refused_by_dcps_global_plan():
    """Stage 1's only group (the scenario's second) has a tensor lr, stage 0's a
    float: DCP keeps both items of ``optimizer.param_groups.0.lr``, and its
    global plan refuses the key met twice."""
    from torch.distributed.checkpoint._dedup_save_plans import dedup_save_plans
    from torch.distributed.checkpoint.default_planner import create_default_global_save_plan

    model = TreeSpec(3, (LinearSpec(out=3), LinearSpec(out=3)))
    first, second = model.param_fqns()
    groups = (GroupSpec((first,), (("momentum", 0.9),)), GroupSpec((second,), (("lr", TensorValue(0.01)),)))
    scenario = _pipeline(model, groups)
    assert dcp_save_lists_a_key_twice(stage_views(scenario)[0], scenario)
    plain = _pipeline(model, (GroupSpec(model.param_fqns()),))
    assert not dcp_save_lists_a_key_twice(stage_views(plain)[0], plain)
    with pytest.raises(AssertionError, match="item.index.fqn not in md"):
        create_default_global_save_plan(dedup_save_plans(_local_plans(scenario)))


@SETTINGS
@given(PIPELINES)
def test_kept_by_is_dcps_own_de_duplication_of_the_same_osds(scenario):
    event(f"world {scenario.world_size}")
    assert kept_by(scenario) == _planned_by_dcp(scenario)


@SETTINGS
@given(PIPELINES)
def test_kept_by_is_what_dcp_plans_for_the_stages_real_gets(pool, scenario):
    ranks = pool.run(scenario.world_size, pt.dcp_kept_stages, scenario)
    if any(isinstance(r, str) for r in ranks):
        event("torch-dsd's get failed (another defect, recorded elsewhere)")
        return
    event(f"world {scenario.world_size}")
    assert _groups(ranks[0]) == _groups(kept_by(scenario))


def _groups(kept: dict) -> dict:
    """The param-group items of `kept`: the keys stages share.  (State items
    are each one stage's, where only their bytes count: torch-dsd may name
    them otherwise, e.g. with ``_orig_mod``, T-entries of their own.)"""
    return {k: r for k, r in kept.items() if ".param_groups." in k[0]}
