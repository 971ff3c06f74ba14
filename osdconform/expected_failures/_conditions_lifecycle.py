"""Named conditions of the entries about lifecycles (property ``lifecycle``).

A lifecycle's predicate sees its steps as ``lifecycle`` (a tuple of
`osdconform.lifecycle` steps) and ``s``, the scenario its world starts under
(``s.steps``: the steps trained before the lifecycle's first step).  What
only lifecycles show is a load into live objects: objects that have state,
whose parameters may have been frozen since the start, unlike the fresh
objects every single-load property loads into.
"""

from __future__ import annotations

from typing import Any


def walk(s: Any, lifecycle: tuple) -> list[tuple[Any, Any]]:
    """Each step of the lifecycle with `s` as it stands when that step runs: the
    steps trained so far (``steps``), the model with the lifecycle's freezes (and
    unfreezes) so far and the param groups it added so far (a reshard's world
    and plan are left to the condition that asks)."""
    from ..lifecycle import AddParamGroup, Freeze, Train, Unfreeze
    from ..lifecycle._rules import scenario_after

    trained, at, found = s.steps, s, []
    for step in lifecycle:
        if isinstance(step, Train):
            trained += step.steps
        elif isinstance(step, (Freeze, Unfreeze, AddParamGroup)):
            at = scenario_after(at, (step,))
        found.append((step, at.replace(steps=trained)))
    return found


def _scenarios_at(s: Any, lifecycle: tuple, kinds: tuple) -> list[Any]:
    """`s` as it stands at each step of the lifecycle of one of `kinds` (`walk`)."""
    return [at for step, at in walk(s, lifecycle) if isinstance(step, kinds)]


def _trained_at(s: Any, lifecycle: tuple, kinds: tuple) -> list[int]:
    """How many steps were trained at each step of the lifecycle of one of `kinds`."""
    return [at.steps for at in _scenarios_at(s, lifecycle, kinds)]


def _sets_into_live(s: Any, lifecycle: tuple) -> list[Any]:
    """The scenario at each set into the live objects (a load of a checkpoint
    into them, or a get set straight back)."""
    from ..lifecycle import GetSet, Load

    return _scenarios_at(s, lifecycle, (Load, GetSet))


def sets_into_frozen_params(s: Any, lifecycle: tuple) -> bool:
    """Some set into the live objects comes after a parameter was frozen that
    trained before (frozen after k >= 1 steps, step k reached; by the model or
    by a `Freeze` step): torch-dsd's set drops the saved state of a parameter
    that does not require grad (T12)."""
    return any(
        1 <= k <= at.steps - 1 for at in _sets_into_live(s, lifecycle) for k in at.model.frozen_after().values() if k
    )


def sets_into_stepped_lbfgs(s: Any, lifecycle: tuple) -> bool:
    """Some set into the live objects of an LBFGS that has stepped: torch-dsd's
    strict set then asks state of every parameter LBFGS keeps none for (T66)."""
    lbfgs = any(opt.name == "lbfgs" for opt in s.optimizers)
    return lbfgs and any(at.steps > 0 for at in _sets_into_live(s, lifecycle))


def at_some_save(s: Any, lifecycle: tuple, condition) -> bool:
    """Whether `condition` (a named condition of a scenario) holds for the
    scenario as it stands at some save of the lifecycle (the steps trained so
    far, the freezes so far; the world and plan `s`'s)."""
    from ..lifecycle import Save

    return any(condition(at) for at in _scenarios_at(s, lifecycle, (Save,)))


def loads_into_stepped_lbfgs(s: Any, lifecycle: tuple) -> bool:
    """Some load into the live objects of an LBFGS that has stepped (not a get set
    back): torch-dcp's template then has the live history's lengths (T65)."""
    from ..lifecycle import Load

    lbfgs = any(opt.name == "lbfgs" for opt in s.optimizers)
    return lbfgs and any(trained > 0 for trained in _trained_at(s, lifecycle, (Load,)))


def sets_state_from_before_added_params_stepped(s: Any, lifecycle: tuple) -> bool:
    """Some set of optimizer state taken after an `AddParamGroup` and before the
    next training step (a get set straight back, or a checkpoint saved then and
    loaded later, into the live objects or fresh ones): the added parameters
    have no state in it yet, and torch-dsd's strict set demands state for every
    parameter that requires grad once the checkpoint has any."""
    from ..lifecycle import AddParamGroup, GetSet, Load, NewWorld, Reshard, Restart, Save, Train

    unstepped, lacking = False, set()
    for step in lifecycle:
        if isinstance(step, AddParamGroup):
            unstepped = True
        elif isinstance(step, Train):
            unstepped = False
        elif isinstance(step, GetSet) and unstepped:
            return True
        elif isinstance(step, Save) and unstepped:
            lacking.add(step.checkpoint)
        elif isinstance(step, (Load, Restart, NewWorld, Reshard)) and step.checkpoint in lacking:
            return True
    return False


def reloads_a_checkpoint_trained_through(s: Any, lifecycle: tuple) -> bool:
    """An in-memory checkpoint loaded into the live objects, trained on, then
    loaded again: where the set aliases the dict it was given (torch-dsd's
    isolation defect), the training after the first load changed the
    checkpoint itself, so the second load restores the trained values."""
    from ..lifecycle import Load, Train

    loaded, trained_through = set(), set()
    for step in lifecycle:
        if isinstance(step, Train):
            trained_through |= loaded
        elif isinstance(step, Load):
            if step.checkpoint in trained_through:
                return True
            loaded.add(step.checkpoint)
    return False


LIFECYCLE = (
    sets_into_frozen_params, sets_into_stepped_lbfgs, at_some_save, loads_into_stepped_lbfgs,
    sets_state_from_before_added_params_stepped, reloads_a_checkpoint_trained_through,
)
