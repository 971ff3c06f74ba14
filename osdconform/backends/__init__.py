"""Backends: adapters under test, and the protocol they implement.

Built-in: ``reference`` (the oracle), ``torch-dsd``, ``torch-dcp``, ``torch-save``,
``fsdp1`` and ``zero``.  Third-party adapters
are named ``package.module:attr`` or registered by name in the entry-point
group ``osdconform.backends``, optionally with keyword arguments for a
factory (``pkg.mod:make(compress=True)``).  See `Backend` for the protocol.

This module is the adapter kit: everything an adapter needs is importable
from here, so a third-party adapter never reaches into a private module
(whose names may change): the protocol (`Backend`, `CheckpointBackend`,
`Capabilities`, `StateOptions`), what the methods receive (`Workload`), and
the converters between ``optimizer.state_dict()``'s index-keyed form and the
canonical FQN-keyed OSD the suites compare (`to_canonical`, `to_native`,
`split_osd`).  A training framework's adapter (`Framework`: its own
``prepare`` and ``train``) also finds here what it needs of the suite's
training: `apply_planned` (the suite's wrapping of the drawn plan),
`step_loss` (one step's loss on the suite's data), `default_train` (the
suite's own loop) and `rebuild_optimizers` (the optimizers built anew over
parameters the framework's wrapping replaced).  A framework that applies the
plan itself finds the plan's submodules by the user's FQNs with
`user_submodule` (the model may come checkpoint-wrapped or compiled).
"""

from ..scenario import Workload, apply_planned, rebuild_optimizers, step_loss, user_submodule
from ..scenario import train as default_train
from ._native import split_osd, to_canonical, to_native
from ._protocol import ALL_PLANS, Backend, Capabilities, CheckpointBackend, Framework, StateOptions
from ._registry import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    BackendNotInstalled,
    BackendSource,
    BackendSpecError,
    builtin_name,
    default_space,
    entry_point_backends,
    known_backends,
    make_backend,
    parse_spec,
    resolve_backend,
)

__all__ = [
    "ALL_PLANS",
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendNotInstalled",
    "BackendSource",
    "BackendSpecError",
    "Capabilities",
    "CheckpointBackend",
    "Framework",
    "StateOptions",
    "Workload",
    "apply_planned",
    "user_submodule",
    "builtin_name",
    "default_space",
    "default_train",
    "entry_point_backends",
    "known_backends",
    "make_backend",
    "parse_spec",
    "rebuild_optimizers",
    "resolve_backend",
    "split_osd",
    "step_loss",
    "to_canonical",
    "to_native",
]
