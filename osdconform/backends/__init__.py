"""Backends: adapters under test, and the protocol they implement.

Built-in: ``reference`` (the oracle), ``torch-dsd``, ``torch-dcp``, ``torch-save``,
``fsdp1`` and ``zero``.  Anything else is named
``package.module:attr``.  See `Backend` for the protocol.
"""

from ._protocol import ALL_PLANS, Backend, Capabilities, CheckpointBackend, StateOptions
from ._registry import BUILTIN, BackendSpecError, make_backend, resolve_backend

__all__ = [
    "ALL_PLANS",
    "BUILTIN",
    "Backend",
    "BackendSpecError",
    "Capabilities",
    "CheckpointBackend",
    "StateOptions",
    "make_backend",
    "resolve_backend",
]
