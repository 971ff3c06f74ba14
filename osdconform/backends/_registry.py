"""Resolve ``--osd-backend`` values: a built-in name, an entry-point name, or ``package.module:attr``.

The value is a string so that it crosses process boundaries as is: the driver
resolves it to read capabilities, and every rank resolves it again to build
its own instance.

Third-party packages make their adapter known by name through the entry-point
group ``osdconform.backends``, e.g. in their ``pyproject.toml``::

    [project.entry-points."osdconform.backends"]
    mine = "my_pkg.osd_adapter:MyCheckpointer"

after which ``--osd-backend=mine`` works and ``osdconform backends`` lists it.
A built-in name always wins over an entry point of the same name, so an
installed package cannot silently replace the backend a nightly job tests.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterable

ENTRY_POINT_GROUP = "osdconform.backends"

BUILTIN: dict[str, str] = {
    "reference": "osdconform.backends.reference:ReferenceBackend",
    "torch-dsd": "osdconform.backends.torch_dsd:TorchDSDBackend",
    "torch-dcp": "osdconform.backends.torch_dcp:TorchDCPBackend",
    "torch-save": "osdconform.backends.torch_save:TorchSaveBackend",
    "fsdp1": "osdconform.backends.fsdp1:FSDP1Backend",
    "fsdp1-local": "osdconform.backends.fsdp1:FSDP1LocalBackend",
    "zero": "osdconform.backends.zero:ZeroBackend",
}


class BackendSpecError(ValueError):
    """An ``--osd-backend`` value that names no usable backend."""


@dataclass(frozen=True)
class BackendSource:
    """Where a backend name comes from: ``built-in`` or an entry point of a distribution."""

    name: str
    target: str  # package.module:attr
    origin: str  # "built-in" or "entry point (<distribution>)"


def entry_point_backends(entry_points: Iterable[metadata.EntryPoint] | None = None) -> dict[str, BackendSource]:
    """Backends registered in the ``osdconform.backends`` entry-point group.

    `entry_points` defaults to the installed ones; passing them lets a caller
    (or a test) resolve a constructed `importlib.metadata.EntryPoint`.
    Entry points whose name is built-in are ignored (built-ins win).
    """
    if entry_points is None:
        entry_points = _installed_entry_points()
    found: dict[str, BackendSource] = {}
    for ep in entry_points:
        if ep.group != ENTRY_POINT_GROUP or ep.name in BUILTIN or ep.name in found:
            continue
        dist = getattr(ep, "dist", None)
        dist_name = dist.name if dist is not None else None
        origin = f"entry point ({dist_name})" if dist_name else "entry point"
        found[ep.name] = BackendSource(ep.name, ep.value, origin)
    return found


@functools.lru_cache(maxsize=1)
def _installed_entry_points() -> tuple[metadata.EntryPoint, ...]:
    # Read once per process: every rank resolves the backend name for every
    # example, and scanning the installed distributions takes milliseconds.
    return tuple(metadata.entry_points(group=ENTRY_POINT_GROUP))


def known_backends(entry_points: Iterable[metadata.EntryPoint] | None = None) -> dict[str, BackendSource]:
    """Every backend known by name: built-ins first, then entry points."""
    known = {name: BackendSource(name, target, "built-in") for name, target in BUILTIN.items()}
    known.update(entry_point_backends(entry_points))
    return known


def resolve_backend(spec: str, entry_points: Iterable[metadata.EntryPoint] | None = None) -> Any:
    """Return the backend class (or factory / instance) that `spec` names."""
    if spec in BUILTIN:
        target = BUILTIN[spec]
    elif ":" in spec:
        target = spec
    else:
        registered = entry_point_backends(entry_points)
        if spec not in registered:
            names = sorted(BUILTIN) + sorted(registered)
            raise BackendSpecError(
                f"unknown backend {spec!r}: use a known name ({', '.join(names)}) or package.module:attr"
            )
        target = registered[spec].target
    return _load_target(spec, target)


def _load_target(spec: str, target: str) -> Any:
    mod_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as exc:
        raise BackendSpecError(f"backend {spec!r}: cannot import {mod_name!r}: {exc!r}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BackendSpecError(
                f"backend {spec!r}: module {mod_name!r} has no attribute {attr!r}"
            ) from None
    if not hasattr(obj, "capabilities"):
        raise BackendSpecError(f"backend {spec!r} has no 'capabilities'; see osdconform.backends.Backend")
    caps = obj.capabilities
    needed = []
    if caps.full or caps.sharded:
        needed += ["get_optimizer_state", "set_optimizer_state"]
    if caps.checkpoint:
        needed += ["save_checkpoint", "load_checkpoint"]
    for name in needed:
        if not hasattr(obj, name):
            raise BackendSpecError(f"backend {spec!r} has no {name!r}; see osdconform.backends.Backend")
    return obj


def make_backend(spec: str) -> Any:
    """A fresh backend instance for `spec` (a class is called; an instance is used as is)."""
    obj = resolve_backend(spec)
    return obj() if isinstance(obj, type) else obj
