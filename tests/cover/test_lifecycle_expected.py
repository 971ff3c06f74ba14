"""What a lifecycle inherits from the single-step properties' expected failures, and its own entries."""

from __future__ import annotations

from osdconform.backends import StateOptions
from osdconform.expected_failures import parse_xfails
from osdconform.expected_failures._conditions_lifecycle import sets_into_frozen_params, sets_into_stepped_lbfgs
from osdconform.lifecycle import Freeze, GetSet, Load, Reshard, Restart, Save, Train
from osdconform.lifecycle._expected import inherited, property_steps, scenario_at
from osdconform.scenario import GroupSpec, LinearSpec, OptimizerSpec, PlanSpec, Scenario, TreeSpec

START = Scenario(
    seed=1, world_size=2, model=TreeSpec(width=2, layers=(LinearSpec(out=2), LinearSpec(out=1, freeze=2))),
    optimizers=(OptimizerSpec("adam", (GroupSpec(("layers.0.weight", "layers.1.weight")),)),),
    plan=PlanSpec("ddp"), steps=0,
)
FULL = StateOptions(full=True)


def test_each_step_is_read_as_the_property_step_it_performs_with_the_steps_trained_so_far():
    steps = (Save(0), Train(2), Save(1), Load(0), GetSet(), Reshard(1, 3, PlanSpec("none")), Restart(0))
    seen = [(prop, name, s.steps, s.world_size, None if src is None else src.steps)
            for prop, name, s, src in property_steps(START, steps, 0, len(steps))]
    assert ("roundtrip", "roundtrip", 0, 2, None) in seen  # the first save: before any step
    assert ("side_effects", "side_effects", 2, 2, None) in seen  # the second: after two
    assert ("roundtrip", "roundtrip", 2, 2, 0) in seen  # load of checkpoint 0 (saved at 0 steps)
    assert ("isolation", "isolation_after_set", 2, 2, 0) in seen
    assert ("reshard", "reshard_load", 2, 3, 2) in seen  # in the new world, checkpoint 1 saved at 2
    assert not any(name == "reshard_load" and w == 2 for _, name, _, w, _ in seen)
    # Only the steps of the world asked for (a reshard starts the next one).
    later = list(property_steps(START, steps, 5, len(steps)))
    assert {name for _, name, _, _ in later} == {"reshard_load", "types", "roundtrip", "isolation_after_set"}
    assert scenario_at(START, steps[:3]).steps == 2


ENTRIES = parse_xfails(
    """
property:   roundtrip
when:       loads(step) and s.steps == 0
match:      before the first step
reason:     r
reproducer: repro/x.py

property:   side_effects
when:       s.steps == 2
match:      after two steps
reason:     r
reproducer: repro/x.py

property:   fidelity
when:       s.world_size == 3
match:      at world 3
reason:     r
reproducer: repro/x.py
""",
    "test",
)


def test_an_entry_is_inherited_when_it_covers_some_step_of_the_world_as_it_stands_then():
    loads_at_zero, gets_after_two, at_world_3 = ENTRIES
    assert inherited(ENTRIES, FULL, START, (Save(0), Load(0)), 0, 2) == [loads_at_zero]
    assert inherited(ENTRIES, FULL, START, (Train(2), Save(0)), 0, 2) == [gets_after_two]
    assert inherited(ENTRIES, FULL, START, (Train(1), Save(0)), 0, 2) == []  # one step: neither
    # A get in the world of 3 is fidelity's at world 3; the reshard's own load is not a get.
    steps = (Save(0), Reshard(0, 3, PlanSpec("none")), GetSet())
    assert at_world_3 in inherited(ENTRIES, FULL, START, steps, 1, 3)
    assert at_world_3 not in inherited(ENTRIES, FULL, START, steps[:2], 1, 2)


def test_lifecycle_conditions_read_the_steps():
    # layers.1 freezes after 2 steps: a set into live objects after step 2 meets it frozen.
    assert not sets_into_frozen_params(START, (Train(2), Save(0), Load(0)))
    assert sets_into_frozen_params(START, (Train(3), Save(0), Load(0)))
    assert not sets_into_frozen_params(START, (Train(3), Save(0), Restart(0)))  # fresh objects
    lbfgs = START.replace(optimizers=(OptimizerSpec("lbfgs", START.optimizers[0].groups),))
    assert sets_into_stepped_lbfgs(lbfgs, (Train(1), GetSet()))
    assert not sets_into_stepped_lbfgs(lbfgs, (GetSet(), Train(1)))
    assert not sets_into_stepped_lbfgs(START, (Train(1), GetSet()))


def test_conditions_at_saves_and_loads_count_the_steps_trained_before_them():
    from osdconform.expected_failures._conditions_lifecycle import at_some_save, loads_into_stepped_lbfgs

    def before_any_step(s):
        return s.steps == 0

    assert at_some_save(START, (Save(0), Train(1)), before_any_step)
    assert not at_some_save(START, (Train(1), Save(0)), before_any_step)
    lbfgs = START.replace(optimizers=(OptimizerSpec("lbfgs", START.optimizers[0].groups),))
    assert loads_into_stepped_lbfgs(lbfgs, (Save(0), Train(1), Load(0)))
    assert not loads_into_stepped_lbfgs(lbfgs, (Train(1), Save(0), Restart(0), GetSet()))  # no load into live
    assert not loads_into_stepped_lbfgs(START, (Save(0), Train(1), Load(0)))


def test_a_freeze_step_is_the_scenarios_freeze_for_what_follows_it():
    """A `Freeze` step becomes the model's ``freeze`` (frozen after the steps trained
    so far): the scenario the later steps inherit entries with, the one a restart
    builds, and what the lifecycle predicates read."""
    steps = (Train(1), Save(0), Freeze("layers.0", 1), Load(0), Train(1), Load(0))
    assert scenario_at(START, steps[:2]).model.frozen_after() == {"layers.1.weight": 2}
    assert scenario_at(START, steps).model.frozen_after() == {"layers.0.weight": 1, "layers.1.weight": 2}
    # Right after the freeze no training step has applied it: the live parameter still requires grad.
    assert not sets_into_frozen_params(START, steps[:4])
    assert sets_into_frozen_params(START, steps)
    assert START.model.freezable_fqns() == ("layers.0",)
    assert scenario_at(START, steps).model.freezable_fqns() == ()


def test_sets_of_state_taken_before_an_added_group_stepped_are_named():
    from osdconform.expected_failures._conditions_lifecycle import sets_state_from_before_added_params_stepped as lacks
    from osdconform.lifecycle import AddParamGroup, NewWorld

    add = AddParamGroup(0, GroupSpec(("layers.1.weight",)))
    assert lacks(START, (Train(1), add, GetSet()))
    assert not lacks(START, (Train(1), add, Train(1), GetSet()))  # the added parameters stepped
    assert lacks(START, (add, Save(0), Train(1), Load(0)))  # saved before, loaded after
    assert lacks(START, (add, Save(0), NewWorld(0)))
    assert not lacks(START, (add, Train(1), Save(0), NewWorld(0)))
    assert not lacks(START, (Save(0), GetSet(), Load(0)))


def test_a_reload_of_a_checkpoint_trained_through_is_named():
    from osdconform.expected_failures._conditions_lifecycle import reloads_a_checkpoint_trained_through as reloads

    assert reloads(START, (GetSet(), Save(0), Load(0), Train(1), Load(0)))
    assert not reloads(START, (Save(0), Load(0), Load(0)))  # nothing trained in between
    assert not reloads(START, (Save(0), Train(1), Load(0)))  # loaded once
    assert not reloads(START, (Save(0), Save(1), Load(0), Train(1), Load(1)))  # another checkpoint
