"""Scenario strategies draw valid scenarios and shrink to small ones."""

from __future__ import annotations

import pickle

from hypothesis import HealthCheck, given, settings

from helpers.shrinking import minimal
from osdconform import strategies as ost
from osdconform.scenario import PLAN_KINDS, LinearSpec, Scenario, TreeSpec


@given(ost.full_scenarios())
@settings(max_examples=200, deadline=None)
def test_scenarios_are_valid_picklable_and_rebuild_from_repr(scenario):
    # Validation runs in __post_init__: every drawn scenario passed it.
    assert 1 <= scenario.world_size <= 4
    grouped = [fqn for o in scenario.optimizers for g in o.groups for fqn in g.params]
    assert len(grouped) == len(set(grouped))  # disjoint groups and optimizers
    assert set(grouped) <= set(scenario.model.param_fqns())
    # Only a parameter that no optimizer of the scenario can take in the group
    # the blueprint chose is left out (so none takes it in every group).
    from osdconform.scenario._catalogue import accepts_param

    shapes = scenario.model.param_shapes()
    sparse = set(scenario.model.sparse_param_fqns())
    for fqn in set(scenario.model.param_fqns()) - set(grouped):
        assert not any(
            all(accepts_param(o.name, o.flags, shapes[fqn], fqn in sparse, g.hparams) for g in o.groups)
            for o in scenario.optimizers
        )
    assert all(any(g.params for g in o.groups) for o in scenario.optimizers)
    assert pickle.loads(pickle.dumps(scenario)) == scenario
    namespace = {}
    exec("from osdconform.scenario import *", namespace)
    assert eval(repr(scenario), namespace) == scenario
    assert f"world size {scenario.world_size}" in scenario.describe()


def test_minimal_scenario_is_the_simplest():
    s = minimal(ost.full_scenarios(), lambda s: True)
    assert s.world_size == 1
    assert s.model == TreeSpec(width=1, layers=(LinearSpec(out=1),))  # one Linear 1x1, no bias
    assert s.plan.kind == "none"
    assert s.steps == 0 and s.seed == 0
    # One optimizer, the first known one (plain SGD: no state), one group, defaults.
    assert s.optimizer.name == "sgd" and s.optimizer.flags == () and s.optimizer.scheduler is None
    assert len(s.optimizer.groups) == 1 and s.optimizer.groups[0].hparams == ()


def test_shrinks_to_the_smallest_world_and_model_that_shows_a_condition():
    """Asked for a sharded plan on several ranks with a dim the world does not divide,
    the shrinker gets to world 2, one layer and tiny dims."""

    def condition(s: Scenario) -> bool:
        return (
            s.plan.kind == "fsdp2"
            and s.world_size >= 2
            and any(shape[0] % s.world_size for shape in s.model.param_shapes().values() if shape)
            and s.steps >= 1
        )

    s = minimal(ost.full_scenarios(), condition)
    assert s.world_size == 2
    assert s.model == TreeSpec(width=1, layers=(LinearSpec(out=1),))
    assert s.steps == 1


def test_world_sizes_and_plans_are_restricted_as_asked():
    s = minimal(ost.full_scenarios(world_sizes=(3, 4), plan_kinds=["ddp"]), lambda s: True)
    assert s.world_size == 3 and s.plan.kind == "ddp"


def test_every_plan_world_size_and_optimizer_is_drawn():
    seen = {"plan": set(), "world": set(), "opt": set()}

    @given(ost.full_scenarios())
    @settings(max_examples=300, deadline=None, database=None, derandomize=True)  # no flakes
    def collect(s):
        seen["plan"].add(s.plan.kind)
        seen["world"].add(s.world_size)
        seen["opt"].update(s.optimizer_names)

    collect()
    assert seen["plan"] == set(PLAN_KINDS)
    assert seen["world"] == {1, 2, 3, 4}
    from osdconform.scenario import OPTIMIZER_NAMES

    assert seen["opt"] == set(OPTIMIZER_NAMES)


# -- the core space ----------------------------------------------------------------


@given(ost.core_scenarios(world_sizes=(1, 2, 3, 4), plan_kinds=PLAN_KINDS))
@settings(max_examples=100, deadline=None)
def test_core_draws_only_core_plans_when_the_backend_runs_one(scenario):
    assert scenario.plan.kind in ost.CORE_PLANS


@given(ost.core_scenarios(world_sizes=(1, 2), plan_kinds=("fsdp1", "zero", "tp")))
@settings(max_examples=100, deadline=None)
def test_core_falls_back_to_fsdp1_and_zero_for_a_backend_that_runs_no_core_plan(scenario):
    assert scenario.plan.kind in ost.FALLBACK_PLANS
    if scenario.plan.kind == "zero":
        assert scenario.plan == type(scenario.plan)("zero")


@given(ost.core_scenarios(world_sizes=(1, 2), plan_kinds=("none", "fsdp1"), schedulers=True))
@settings(max_examples=100, deadline=None)
def test_core_schedulers_scenarios_have_a_scheduler_or_several_optimizers(scenario):
    assert len(scenario.optimizers) > 1 or scenario.optimizers[0].scheduler is not None
    owned = [f for opt in scenario.optimizers for g in opt.groups for f in g.params]
    assert sorted(owned) == sorted(scenario.model.param_fqns())  # disjoint, and every parameter once


def test_core_schedulers_space_reaches_split_fsdp1_units_and_schedulers():
    split = minimal(
        ost.core_scenarios(world_sizes=(1,), plan_kinds=("fsdp1",), schedulers=True),
        lambda s: "fsdp1:unit split across optimizers" in s.features,
    )
    assert len(split.optimizers) == 2 and split.plan.shard == ()
    scheduled = minimal(
        ost.core_scenarios(world_sizes=(1,), plan_kinds=("none",), schedulers=True),
        lambda s: len(s.optimizers) == 1,
    )
    assert scheduled.optimizers[0].scheduler is not None


def test_an_fsdp1_unit_is_split_when_its_parameters_are_in_two_optimizers():
    from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, PlanSpec

    model = MLPSpec(dims=(2, 2, 2), bias=(False, False))
    per_layer = (
        OptimizerSpec("adam", (GroupSpec(("layers.0.weight",)),)),
        OptimizerSpec("adam", (GroupSpec(("layers.1.weight",)),)),
    )
    scenario = Scenario(seed=0, world_size=1, model=model, optimizers=per_layer, plan=PlanSpec("fsdp1"), steps=1)
    tag = "fsdp1:unit split across optimizers"
    assert tag in scenario.features  # both layers in the root unit
    for shard in (("layers.1",), ("layers.0", "layers.1")):
        assert tag not in scenario.replace(plan=PlanSpec("fsdp1", shard=shard)).features, shard


def test_the_space_is_an_object_each_part_of_a_run_is_handed():
    """`Space.drawable` is the one answer to "which plans and world sizes can a backend be
    drawn at": the core space falls back to fsdp1/zero for a backend that runs none of
    its plans, says why it draws nothing, and the full space draws every plan."""
    from osdconform.backends import resolve_backend

    fsdp1 = resolve_backend("fsdp1").capabilities
    assert ost.CORE.drawable(fsdp1, (1, 2)).plans == ("fsdp1",)
    torch_save = resolve_backend("torch-save").capabilities
    drawable = ost.CORE.drawable(torch_save, (2, 3))
    assert drawable.plans == () and "none of world sizes [2, 3]" in drawable.why_none
    reference = resolve_backend("reference").capabilities
    assert set(ost.FULL.drawable(reference, (1, 2, 3, 4)).plans) == set(PLAN_KINDS)
    assert ost.space("full") is ost.FULL
    assert set(ost.CORE.values(reference, (1,))) >= {"optimizer:adam", "plan:none", "world:1"}


def test_reshard_pairs_draw_the_second_plan_from_the_space_they_are_given():
    core_kinds = set(ost.CORE_PLANS)

    def other_plan(pair):
        return pair[1].plan.kind not in core_kinds

    pair = minimal(ost.reshard_pairs(world_sizes=(1, 2), plan_kinds=PLAN_KINDS, space=ost.FULL), other_plan)
    assert pair[1].plan.kind not in core_kinds and pair[0].world_size != pair[1].world_size

    @given(ost.reshard_pairs(world_sizes=(1, 2), plan_kinds=PLAN_KINDS, space=ost.CORE))
    @settings(max_examples=30, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def core_only(pair):
        assert {pair[0].plan.kind, pair[1].plan.kind} <= core_kinds

    core_only()


@given(ost.reshard_pairs(world_sizes=(1, 2, 3, 4), plan_kinds=PLAN_KINDS, space=ost.FULL))
@settings(max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck))
def test_reshard_pairs_load_into_optimizers_that_run_under_the_second_plan(pair):
    # reshard[storage] (torch-dcp, full space): AdamW(foreach) saved without a plan was loaded under
    # TP, whose mixed DTensor and plain parameters no foreach kernel takes, so the load's
    # zero-gradient step failed in the second world.
    saved_at, loaded_at = pair
    assert not [why for opt in loaded_at.optimizers if (why := opt.unsupported_plan(loaded_at.plan.kind))]
