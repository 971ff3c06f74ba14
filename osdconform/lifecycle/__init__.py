"""Checkpoint lifecycles: chains of train, save, load, restart (in place or in a new process-group world), reshard, freeze, unfreeze, param-group and scheduler steps, drawn by Hypothesis.

``suites/test_lifecycle.py`` runs `lifecycle_machine` for a backend in each of
its forms; a third party can run it in its own test the same way::

    def test_my_lifecycles(osd):
        run_state_machine_as_test(lifecycle_machine(osd, StateOptions(storage=True)))

Modules: `_rules` (the steps, as data), `_machine` (the state machine that
draws them), `_expected` (the expected failures a lifecycle inherits from the
single-step properties), `_replay` (the steps on the ranks of one world, checked after
each one against a shadow whose checkpoints the reference takes).
"""

from ._machine import MAX_STEPS, lifecycle_machine
from ._replay import lifecycle
from ._rules import (
    AddParamGroup,
    Freeze,
    GetSet,
    Load,
    NewWorld,
    RebuildSchedulers,
    Reshard,
    Restart,
    Save,
    Step,
    StepSchedulers,
    Train,
    Unfreeze,
    worlds,
)

__all__ = [
    "MAX_STEPS",
    "AddParamGroup",
    "Freeze",
    "GetSet",
    "Load",
    "NewWorld",
    "RebuildSchedulers",
    "Reshard",
    "Restart",
    "Save",
    "Step",
    "StepSchedulers",
    "Train",
    "Unfreeze",
    "lifecycle",
    "lifecycle_machine",
    "worlds",
]
