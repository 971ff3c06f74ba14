"""Lifecycle steps on live objects: a restart in a new process-group world
(``NewWorld``), an unfreeze (``Unfreeze``) and a param group added
(``AddParamGroup``), issue 14 item 5.

The harness restarts the process group in place (`RankContext.restart_process_group`):
the warm world keeps working afterwards, for the task that restarted and the
tasks after it, and nothing of the old group is left registered.  A lifecycle
through a new world passes against the reference under plans that build
meshes and process groups (FSDP2, DDP), and fails against a checkpointer that
keeps the group of its first get (`KeepsItsFirstProcessGroup`, a fault of the
corpus) at the first set after the restart, naming that step.  An unfrozen
parameter requires grad again and trains on the live objects (it stood still
while frozen), and a lifecycle that freezes, saves, unfreezes and loads
passes against the reference.  A group held back at the start joins the live
optimizer (its parameters stood still until then, and train and have state
after), under DDP, ZeRO (which partitions it anew) and FSDP2.
"""

from __future__ import annotations

import pytest
from faults import KeepsItsFirstProcessGroup

from helpers import rank_tasks
from osdconform.backends import StateOptions
from osdconform.harness import WorldFailure, WorldPool
from osdconform.lifecycle import Load, NewWorld, Save, Train, lifecycle, worlds
from osdconform.lifecycle._rules import describe
from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, PlanSpec, Scenario

FULL = StateOptions(full=True)
STEPS = (Save(0), Train(1), NewWorld(0), Train(1), Save(1), Load(0), NewWorld(1), Train(1))


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=120) as pool:
        yield pool


def _scenario(plan: str) -> Scenario:
    model = MLPSpec(dims=(3, 4, 2), bias=(True, False))
    adam = OptimizerSpec("adam", (GroupSpec(model.param_fqns()),))
    return Scenario(seed=2, world_size=2, model=model, optimizers=(adam,), plan=PlanSpec(plan), steps=1)


def test_a_restarted_process_group_serves_the_task_and_the_tasks_after_it(pool):
    seen = pool.run(2, rank_tasks.restart_and_use_the_new_world, "test-restart")
    assert seen[0] == {
        "sum": 2.0, "new_group": True, "new_mesh": True, "gathered": [0.0, 1.0, 2.0, 3.0],
        "old_group_registered": False,
    }
    assert pool.run(2, rank_tasks.all_reduce_ones) == [2.0, 2.0]


def test_a_new_world_is_a_step_of_the_same_world():
    # In place: the same ranks go on, so a lifecycle with new worlds is still one task.
    assert worlds(_scenario("ddp"), STEPS) == [(_scenario("ddp"), 0, len(STEPS))]
    assert describe(NewWorld(1)) == "new process-group world (same ranks): fresh objects, load checkpoint 1"


@pytest.mark.parametrize("plan", ["fsdp2", "ddp"])
def test_a_lifecycle_through_new_worlds_passes_against_the_reference(pool, tmp_path, plan):
    sc = _scenario(plan)
    result = pool.run(2, lifecycle, sc, "reference", FULL, str(tmp_path), sc, STEPS, 0, len(STEPS))
    assert result == [{"steps": len(STEPS)}] * 2


def test_a_checkpointer_keeping_its_first_process_group_fails_at_the_first_get_after_the_restart(pool, tmp_path):
    sc = _scenario("ddp")
    backend = f"{KeepsItsFirstProcessGroup.__module__}:{KeepsItsFirstProcessGroup.__name__}"
    with pytest.raises(WorldFailure) as failure:
        pool.run(2, lifecycle, sc, backend, FULL, str(tmp_path), sc, STEPS, 0, len(STEPS))
    for report in failure.value.reports:  # every rank, in the set that loads checkpoint 0
        assert report.phase == "set"
        assert "is not initialized in the world" in report.message
        assert report.message.endswith(
            "in lifecycle step 2 (live): new process-group world (same ranks): fresh objects, load checkpoint 0")


def test_a_lifecycle_that_unfreezes_what_it_froze_passes_against_the_reference(pool, tmp_path):
    from osdconform.lifecycle import Freeze, Restart, Unfreeze
    from osdconform.scenario import LinearSpec, TreeSpec

    model = TreeSpec(width=3, layers=(LinearSpec(out=3, bias=True), LinearSpec(out=2)))
    adam = OptimizerSpec("adam", (GroupSpec(model.param_fqns()),))
    sc = Scenario(seed=4, world_size=2, model=model, optimizers=(adam,), plan=PlanSpec("ddp"), steps=1)
    steps = (Freeze("layers.0", 1), Train(1), Save(0), Unfreeze("layers.0"), Train(2), Load(0), Train(1),
             Restart(0), Train(1))
    result = pool.run(2, lifecycle, sc, "reference", FULL, str(tmp_path), sc, steps, 0, len(steps))
    assert result == [{"steps": len(steps)}] * 2


def test_an_unfrozen_parameter_trains_again_on_the_live_objects(pool, tmp_path):
    from osdconform.scenario import LinearSpec, TreeSpec

    model = TreeSpec(width=3, layers=(LinearSpec(out=3, bias=True), LinearSpec(out=2)))
    adam = OptimizerSpec("adam", (GroupSpec(model.param_fqns()),))
    sc = Scenario(seed=4, world_size=2, model=model, optimizers=(adam,), plan=PlanSpec("ddp"), steps=0)
    assert pool.run(2, rank_tasks.unfreeze_trains_again, sc, "layers.0.weight", str(tmp_path)) == [[True] * 3] * 2


@pytest.mark.parametrize("plan", ["ddp", "zero", "fsdp2"])
def test_a_lifecycle_that_adds_a_param_group_passes_against_the_reference(pool, tmp_path, plan):
    from osdconform.lifecycle import AddParamGroup, Restart
    from osdconform.lifecycle._rules import held_back

    model = MLPSpec(dims=(3, 4, 2), bias=(True, False))
    adam = OptimizerSpec("adamw", (GroupSpec(("layers.0.weight", "layers.0.bias")),
                                   GroupSpec(("layers.1.weight",), (("lr", 0.01),))))
    full = Scenario(seed=2, world_size=2, model=model, optimizers=(adam,), plan=PlanSpec(plan), steps=1)
    [(sc, add)] = held_back(full)
    assert add == AddParamGroup(0, adam.groups[1])
    steps = (Save(0), Train(1), add, Train(1), Save(1), Train(1), Load(1), NewWorld(1), Train(1), Restart(1))
    result = pool.run(2, lifecycle, sc, "reference", FULL, str(tmp_path), sc, steps, 0, len(steps))
    assert result == [{"steps": len(steps)}] * 2
    # Saved right after the add, before the group stepped: under ZeRO the wrapper's group has
    # only what add_param_group was given until the next step (the local optimizer has the
    # defaults), and the reference takes the hyperparameters in effect.
    steps = (Train(1), add, Save(0), NewWorld(0), Train(1), Load(0))
    (tmp_path / "right-after").mkdir()
    result = pool.run(2, lifecycle, sc, "reference", FULL, str(tmp_path / "right-after"), sc, steps, 0, len(steps))
    assert result == [{"steps": len(steps)}] * 2


def test_an_added_group_joins_the_live_optimizer_and_trains(pool, tmp_path):
    from osdconform.lifecycle._rules import held_back

    model = MLPSpec(dims=(3, 4, 2), bias=(True, False))
    adam = OptimizerSpec("adam", (GroupSpec(("layers.0.weight", "layers.0.bias")), GroupSpec(("layers.1.weight",))))
    full = Scenario(seed=2, world_size=2, model=model, optimizers=(adam,), plan=PlanSpec("ddp"), steps=0)
    [(sc, add)] = held_back(full)
    assert pool.run(2, rank_tasks.added_group_trains, sc, add, str(tmp_path)) == [[2, True, True, True]] * 2


@pytest.mark.parametrize("backend, form, says", [
    ("torch-dsd", "full", "Missing optimizer state for parameter 'layers.1.weight'"),
    ("torch-dcp", "storage", "Missing key in checkpoint state_dict: optimizer.state.layers.1.weight."),
])
def test_torch_refuses_a_checkpoint_taken_before_an_added_group_stepped_as_its_entry_says(
        pool, tmp_path, backend, form, says):
    from osdconform.expected_failures import shipped_xfails
    from osdconform.lifecycle import AddParamGroup, Restart
    from osdconform.lifecycle._rules import held_back

    options = StateOptions(full=True) if form == "full" else StateOptions(storage=True)
    model = MLPSpec(dims=(3, 4, 2), bias=(True, False))
    # RMSprop: stateful, and no tuple hyperparameter (torch-dsd gives Adam's betas back as a list)
    rmsprop = OptimizerSpec("rmsprop", (GroupSpec(("layers.0.weight", "layers.0.bias")),
                                        GroupSpec(("layers.1.weight",))))
    full = Scenario(seed=2, world_size=2, model=model, optimizers=(rmsprop,), plan=PlanSpec("ddp"), steps=1)
    [(sc, add)] = held_back(full)
    assert isinstance(add, AddParamGroup)
    steps = (add, Save(0), Restart(0))
    with pytest.raises(WorldFailure) as failure:
        pool.run(2, lifecycle, sc, backend, options, str(tmp_path), sc, steps, 0, len(steps))
    assert says in str(failure.value)
    entries = [e for e in shipped_xfails(backend) if e.applies("lifecycle", sc, options, lifecycle=steps)]
    assert any(e.match in str(failure.value) for e in entries)
    # One training step after the add gives the new parameters state: the checkpoint loads.
    steps = (add, Train(1), Save(0), Restart(0))
    (tmp_path / "2").mkdir()
    assert pool.run(2, lifecycle, sc, backend, options, str(tmp_path / "2"), sc, steps, 0, len(steps)) == [
        {"steps": len(steps)}] * 2
