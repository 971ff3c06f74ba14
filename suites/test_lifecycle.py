"""Lifecycles: chains of train, save, load, restart (in place or in a new process-group world), reshard, freeze, unfreeze, param-group and scheduler steps, checked after every step.

A Hypothesis state machine (`osdconform.lifecycle`) draws the chain (which
checkpoint each load takes, the world sizes and plans a reshard goes to) and
shrinks a failure to the few steps that matter; after every step the live
optimizers must hold what they would hold had every checkpoint been taken and
restored by the reference oracle (a shadow through the same history, bitwise).
One test per form: full and sharded in memory, and through storage.

The built-in backends run (their lifecycles were triaged: what their known
defects show in a lifecycle, their entries cover).  Another backend whose
expected failures (shipped or ``--osd-xfails``) name no lifecycle is skipped
here, saying so: its known defects show in lifecycles too, and until its
entries cover them they would fail every run.  A backend without expected
failures (a third party's) runs.
"""

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from osdconform.backends import BUILTIN, builtin_name
from osdconform.lifecycle import MAX_STEPS, lifecycle_machine
from osdconform.properties import forms

FORMS = forms("full", "sharded", "storage")


@pytest.mark.parametrize("form", FORMS)
def test_lifecycle(osd, form):
    options = FORMS[form]
    osd.require(options=options)
    triaged = builtin_name(osd.backend_spec) in BUILTIN
    if osd.xfails and not triaged and not any("lifecycle" in e.properties for e in osd.xfails):
        pytest.skip(f"the expected failures of {osd.backend_spec!r} do not cover lifecycles yet")
    machine = lifecycle_machine(osd, options)
    run_state_machine_as_test(machine, settings=settings(settings.default, stateful_step_count=MAX_STEPS))
