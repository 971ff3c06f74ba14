"""Every lifecycle rule is drawn: the state machine, run without running its steps.

A rule whose precondition never holds, or whose draws are always assumed away,
would leave its step out of every lifecycle without any test failing (the
suites pass either way).  Here `lifecycle_machine` runs with a stand-in for
the ``osd`` fixture whose ``check`` runs nothing, over the full space's
scenarios at world sizes 1-4 and every plan kind, and each form's lifecycles
must take every step its form allows.  300 derandomized examples, about 15 s
for both forms: the rarest step is AddParamGroup (in 5 of 150 storage-form
lifecycles when this was written; the full form's 150 drew none once the
gradient-dtype models moved the draws, so the count doubled).
"""

from __future__ import annotations

import contextlib
import typing

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from osdconform.backends import StateOptions
from osdconform.lifecycle import MAX_STEPS, GetSet, Step, lifecycle_machine
from osdconform.scenario import PLAN_KINDS
from osdconform.strategies._space import space

EVERY_STEP = frozenset(typing.get_args(Step))


class _Drawing:
    """The part of the ``osd`` fixture `lifecycle_machine` uses; ``check`` runs nothing."""

    xfails: list = []

    def __init__(self) -> None:
        self.space = space("full")

    def scenarios(self, options):
        return self.space.scenarios(world_sizes=(1, 2, 3, 4), plan_kinds=PLAN_KINDS)

    def usable_world_sizes(self):
        return (1, 2, 3, 4)

    def plans(self, options):
        return list(PLAN_KINDS)

    @contextlib.contextmanager
    def directory(self):
        yield "unused"

    def check(self, *args, **kwargs):
        return None


@pytest.mark.parametrize("form, allowed", [
    ("full", EVERY_STEP),
    ("storage", EVERY_STEP - {GetSet}),  # get-and-set-back is an in-memory step
])
def test_every_step_a_form_allows_is_drawn(form, allowed):
    options = StateOptions(full=True) if form == "full" else StateOptions(storage=True)
    machine = lifecycle_machine(_Drawing(), options)
    drawn: set[type] = set()
    machine.teardown = lambda self: drawn.update(type(s) for s in getattr(self, "steps", ()))
    run_state_machine_as_test(machine, settings=settings(
        max_examples=300, derandomize=True, database=None, deadline=None, stateful_step_count=MAX_STEPS))
    assert drawn == allowed, f"never drawn: {sorted(c.__name__ for c in allowed - drawn)}"
