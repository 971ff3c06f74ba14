"""Resolve ``--osd-backend`` values: a built-in name or ``package.module:attr``.

The value is a string so that it crosses process boundaries as is: the driver
resolves it to read capabilities, and every rank resolves it again to build
its own instance.
"""

from __future__ import annotations

import importlib
from typing import Any

BUILTIN: dict[str, str] = {
    "reference": "osdconform.backends.reference:ReferenceBackend",
    "torch-dsd": "osdconform.backends.torch_dsd:TorchDSDBackend",
    "torch-dcp": "osdconform.backends.torch_dcp:TorchDCPBackend",
    "torch-save": "osdconform.backends.torch_save:TorchSaveBackend",
    "fsdp1": "osdconform.backends.fsdp1:FSDP1Backend",
    "zero": "osdconform.backends.zero:ZeroBackend",
}


class BackendSpecError(ValueError):
    """An ``--osd-backend`` value that names no usable backend."""


def resolve_backend(spec: str) -> Any:
    """Return the backend class (or factory / instance) that `spec` names."""
    target = BUILTIN.get(spec, spec)
    if ":" not in target:
        raise BackendSpecError(
            f"unknown backend {spec!r}: use a built-in name ({', '.join(sorted(BUILTIN))}) "
            "or package.module:attr"
        )
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
