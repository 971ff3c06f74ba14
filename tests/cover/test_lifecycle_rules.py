"""Lifecycle steps as data: how a lifecycle splits into worlds, and that steps print and rebuild."""

from __future__ import annotations

from osdconform.lifecycle import GetSet, Load, RebuildSchedulers, Reshard, Restart, Save, StepSchedulers, Train, worlds
from osdconform.lifecycle._rules import describe, scenario_after
from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, PlanSpec, Scenario

START = Scenario(
    seed=3, world_size=2, model=MLPSpec(dims=(2, 3), bias=(True,)),
    optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.0.weight", "layers.0.bias")),)),),
    plan=PlanSpec("ddp"), steps=1,
)


def test_a_reshard_to_another_world_size_starts_a_world_and_one_to_the_same_does_not():
    steps = (
        Train(2), Save(0), Reshard(0, 2, PlanSpec("fsdp2")),  # same size: same world, another plan
        Save(1), Reshard(1, 3, PlanSpec("none")), Load(0), Reshard(0, 1), Restart(1),
    )
    runs = worlds(START, steps)
    assert [(sc.world_size, sc.plan.kind, first, stop) for sc, first, stop in runs] == [
        (2, "ddp", 0, 4),  # a world starts under the plan it starts with
        (3, "none", 4, 6),
        (1, "none", 6, 8),
    ]
    assert scenario_after(START, steps).world_size == 1


def test_a_lifecycle_without_a_world_change_is_one_world():
    steps = (Save(0), Train(1), Load(0), GetSet(), Restart(0))
    assert worlds(START, steps) == [(START, 0, 5)]


def test_steps_rebuild_from_their_repr_and_say_what_they_do():
    classes = (Train, Save, Load, Restart, Reshard, GetSet, StepSchedulers, RebuildSchedulers, PlanSpec)
    namespace = {c.__name__: c for c in classes}
    for step in (Train(2), Save(1), Load(0), Restart(1), Reshard(0, 3, PlanSpec("fsdp2")), GetSet(),
                 StepSchedulers(), RebuildSchedulers()):
        assert eval(repr(step), namespace) == step
        assert describe(step)
    assert describe(Load(0)) == "load checkpoint 0 into the live objects"


def _tree_with_freezes():
    from osdconform.scenario import LinearSpec, ParamSpec, SequentialSpec, TreeSpec

    return TreeSpec(width=2, layers=(
        LinearSpec(out=2, freeze=2), LinearSpec(out=2, freeze=0),
        SequentialSpec((LinearSpec(out=2), ParamSpec()), freeze=1), LinearSpec(out=2),
    ))


def test_only_what_froze_mid_run_by_a_freeze_of_its_own_unfreezes():
    tree = _tree_with_freezes()
    # layers.1 froze at build; layers.2.* froze through their container, not on their own.
    assert tree.unfreezable_fqns() == ("layers.0",)
    thawed = tree.with_frozen("layers.0", None)
    assert "layers.0.weight" not in thawed.frozen_after()
    assert thawed.frozen_after() == {p: k for p, k in tree.frozen_after().items() if not p.startswith("layers.0.")}
    assert tree.with_frozen("layers.3", 3).unfreezable_fqns() == ("layers.0", "layers.3")


def test_an_unfreeze_takes_the_freeze_of_a_freeze_step_away():
    from osdconform.lifecycle import Freeze, Unfreeze

    start = START.replace(model=_tree_with_freezes(), optimizers=(
        OptimizerSpec("adam", (GroupSpec(_tree_with_freezes().param_fqns()),)),))
    after = scenario_after(start, (Freeze("layers.3", 1), Unfreeze("layers.0"), Unfreeze("layers.3")))
    assert after.model.frozen_after() == {p: k for p, k in start.model.frozen_after().items()
                                          if not p.startswith("layers.0.")}
    assert describe(Unfreeze("layers.0")) == "unfreeze layers.0: it trains again from the next step on"
    assert eval(repr(Unfreeze("layers.0")), {"Unfreeze": Unfreeze}) == Unfreeze("layers.0")


def test_a_held_back_group_is_added_back_last():
    from osdconform.lifecycle import AddParamGroup
    from osdconform.lifecycle._rules import held_back

    adam = OptimizerSpec("adam", (
        GroupSpec(("layers.0.weight",)), GroupSpec(("layers.0.bias",), (("lr", 0.5),)), GroupSpec(()),
    ))
    start = START.replace(optimizers=(adam,))
    [(without, add)] = held_back(start)  # not the first group, nor an empty one
    assert add == AddParamGroup(0, GroupSpec(("layers.0.bias",), (("lr", 0.5),)))
    assert [g.params for g in without.optimizers[0].groups] == [("layers.0.weight",), ()]
    after = scenario_after(without, (add,))
    assert [g.params for g in after.optimizers[0].groups] == [("layers.0.weight",), (), ("layers.0.bias",)]
    assert describe(add) == "add a param group to optimizer 0: [layers.0.bias] lr=0.5"
    assert eval(repr(add), {"AddParamGroup": AddParamGroup, "GroupSpec": GroupSpec}) == add
    # An optimizer with an LR scheduler keeps its groups (the scheduler knows no base lr for a new one).
    from osdconform.scenario import SchedulerSpec

    scheduled = OptimizerSpec("adam", adam.groups, scheduler=SchedulerSpec("StepLR"))
    assert held_back(start.replace(optimizers=(scheduled,))) == []
    # Nor one that would leave the optimizer no parameter (ZeRO cannot be built over none).
    hollow = OptimizerSpec("sgd", (GroupSpec(()), GroupSpec(("layers.0.weight", "layers.0.bias"))))
    assert held_back(start.replace(optimizers=(hollow,))) == []
