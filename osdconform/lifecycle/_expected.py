"""The expected failures a lifecycle inherits from the single-step properties.

A lifecycle gets, sets, saves and loads as the round trip and the reshard do,
so every defect those record for a backend can show in a lifecycle too (a
full set of a plain SGD optimizer fails whether the round trip or the
lifecycle's third step does it).  Writing each entry again for lifecycles
would double the files and drift; instead each step of a lifecycle is read as
the property step it performs, with the scenario as it stands at that step
(the steps trained so far, the world and plan), and every entry that covers
that property step is *inherited*:

* a ``Save`` or ``GetSet`` gets the state (`GETS`); a ``GetSet``, a
  ``Load``, a ``Restart`` and a ``NewWorld`` set or load it (`LOADS`, the checkpoint's
  saving scenario as ``source``); a ``Reshard`` loads in another world or
  plan (``reshard`` / ``reshard_load``, its ``source`` the saving side).

An inherited entry explains a lifecycle's failure only where its ``match``
is in the failure, problem by problem, as every entry does; but it never
makes a passing lifecycle an XPASS: a lifecycle may step past the defect
without showing it (a wrong checkpoint never loaded).  What only lifecycles
show (a load into live objects that already hold state) needs an entry of
its own, with property ``lifecycle``, and its predicate sees the steps as
``lifecycle`` (a tuple of `_rules` steps).
"""

from __future__ import annotations

from typing import Any, Iterable

from ._rules import GetSet, Load, NewWorld, Reshard, Restart, Save, Step, Train, scenario_after

#: What a get (or save) of a lifecycle is: a round trip's get, which must
#: change nothing (side effects) and hold what the optimizer holds (fidelity).
GETS = ("roundtrip", "side_effects", "fidelity")
#: What a load of a lifecycle is: a round trip's load, which must keep kinds
#: (types) and not alias the caller's dict (isolation: a lifecycle loads the
#: same in-memory checkpoint again later).
LOADS = (("roundtrip", "roundtrip"), ("types", "types"), ("isolation", "isolation_after_set"))


def scenario_at(start: Any, steps: tuple[Step, ...]) -> Any:
    """The scenario as it stands after `steps`: world, plan and steps trained so far."""
    trained = start.steps + sum(s.steps for s in steps if isinstance(s, Train))
    return scenario_after(start, steps).replace(steps=trained)


def property_steps(start: Any, steps: tuple[Step, ...], first: int, stop: int) -> Iterable[tuple]:
    """``(property, step name, scenario, source)`` of each single-property step
    that ``steps[first:stop]`` perform (see the module docstring)."""
    saved_at: dict[int, Any] = {}
    for i, step in enumerate(steps[:stop]):
        now = scenario_at(start, steps[:i])
        if isinstance(step, Save):
            saved_at[step.checkpoint] = now
        if i < first:
            continue
        if isinstance(step, (Save, GetSet)):
            for prop in GETS:
                yield prop, prop, now, None
        if isinstance(step, (GetSet, Load, Restart, NewWorld)):
            source = now if isinstance(step, GetSet) else saved_at.get(step.checkpoint)
            for prop, name in LOADS:
                yield prop, name, now, source
        elif isinstance(step, Reshard):
            after = scenario_at(start, steps[: i + 1])
            for prop, name in (("reshard", "reshard_load"), ("types", "types")):
                yield prop, name, after, saved_at.get(step.checkpoint)


def inherited(xfails: Iterable[Any], options: Any, start: Any, steps: tuple[Step, ...], first: int, stop: int) -> list:
    """The entries of `xfails` that cover a property step of ``steps[first:stop]``."""
    found: list = []
    for prop, name, scenario, source in property_steps(start, steps, first, stop):
        for entry in xfails:
            if entry not in found and entry.applies(prop, scenario, options, step=name, source=source):
                found.append(entry)
    return found
