"""Backends: adapters under test, and the protocol they implement.

Built-in: ``reference`` (the oracle), ``torch-dsd``, ``torch-dcp``, ``torch-save``,
``fsdp1`` and ``zero``.  Third-party adapters
are named ``package.module:attr`` or registered by name in the entry-point
group ``osdconform.backends``.  See `Backend` for the protocol.
"""

from ._protocol import ALL_PLANS, Backend, Capabilities, CheckpointBackend, StateOptions
from ._registry import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    BackendSource,
    BackendSpecError,
    entry_point_backends,
    known_backends,
    make_backend,
    resolve_backend,
)

__all__ = [
    "ALL_PLANS",
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendSource",
    "BackendSpecError",
    "Capabilities",
    "CheckpointBackend",
    "StateOptions",
    "entry_point_backends",
    "known_backends",
    "make_backend",
    "resolve_backend",
]
