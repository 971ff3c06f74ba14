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

Any of these may end in keyword arguments, ``pkg.mod:make(compress=True)`` or
``mine(level=3)``: the target is called with them to give the backend.  They
are Python literals read with `ast.literal_eval` (never ``eval``), because the
spec is still a plain string that every rank resolves on its own: a value that
is not a literal could not be rebuilt the same on every rank anyway.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
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

#: osdconform's own framework adapters (``osdconform/adapters``), each an
#: optional extra.  They are registered by name through the entry-point group
#: (pyproject.toml), as a third party's would be; this table names their
#: targets so that their shipped expected failures follow the target, as a
#: built-in's do (`builtin_name`), installed or run from a clone.
ADAPTERS: dict[str, str] = {
    "safetensors": "osdconform.adapters.safetensors:SafetensorsBackend",
    "accelerate": "osdconform.adapters.accelerate:AccelerateBackend",
    "torchtitan": "osdconform.adapters.torchtitan:TorchTitanBackend",
    "lightning": "osdconform.adapters.lightning:LightningBackend",
    "deepspeed": "osdconform.adapters.deepspeed:DeepSpeedBackend",
}


class BackendSpecError(ValueError):
    """An ``--osd-backend`` value that names no usable backend."""


class BackendNotInstalled(BackendSpecError):
    """A known backend whose framework is not installed (its ``requires``)."""


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
    Entry points whose name is built-in, or a shipped adapter's with another
    target, are ignored (ours win).
    """
    if entry_points is None:
        entry_points = _installed_entry_points()
    found: dict[str, BackendSource] = {}
    for ep in entry_points:
        if ep.group != ENTRY_POINT_GROUP or ep.name in BUILTIN or ep.name in found:
            continue
        if ep.name in ADAPTERS and ep.value != ADAPTERS[ep.name]:  # shipped adapters win too
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
    for name, target in ADAPTERS.items():  # a clone run without `pip install`: no entry points
        if known.get(name, BackendSource(name, "", "")).target != target:
            known[name] = BackendSource(name, target, "shipped adapter")
    return known


def parse_spec(spec: str) -> tuple[str, dict[str, Any] | None]:
    """Split ``base(key=literal, ...)`` into ``base`` and its keyword arguments.

    Without parentheses the arguments are None (the target is used as is: a
    class is instantiated per example, an instance shared); with them, even
    empty, the target is called with those arguments.  Only keyword arguments
    with literal values are accepted, read by `ast.literal_eval`.
    """
    base, paren, rest = spec.partition("(")
    base = base.strip()
    if not paren:
        return spec, None
    if not base:
        raise BackendSpecError(f"backend {spec!r}: nothing names the target before '('")
    try:
        call = ast.parse("f(" + rest, mode="eval").body
    except SyntaxError as exc:
        raise BackendSpecError(
            f"backend {spec!r}: bad arguments ({exc.msg}); write name(key=literal, ...)"
        ) from None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "f":
        raise BackendSpecError(f"backend {spec!r}: text after the arguments; write name(key=literal, ...)")
    if call.args:
        raise BackendSpecError(f"backend {spec!r}: positional arguments are not accepted; write name(key=literal, ...)")
    kwargs: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise BackendSpecError(f"backend {spec!r}: '**' is not accepted; write name(key=literal, ...)")
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise BackendSpecError(
                f"backend {spec!r}: argument {kw.arg!r} is not a Python literal ({ast.unparse(kw.value)})"
            ) from None
    return base, kwargs


def _target(base: str, entry_points: Iterable[metadata.EntryPoint] | None = None) -> str:
    if base in BUILTIN:
        return BUILTIN[base]
    if ":" in base:
        return base
    if base in ADAPTERS:  # shipped: known by name even where entry points are not installed
        return ADAPTERS[base]
    registered = entry_point_backends(entry_points)
    if base not in registered:
        names = sorted(BUILTIN) + sorted(set(registered) | set(ADAPTERS))
        raise BackendSpecError(
            f"unknown backend {base!r}: use a known name ({', '.join(names)}) or package.module:attr"
        )
    return registered[base].target


def default_space(spec: str) -> str:
    """The scenario space a run against `spec` draws unless ``--osd-space`` says.

    ``full`` for a built-in backend: its shipped expected failures cover the
    whole space, so the default run reaches every optimizer, plan and model
    kind where the bugs are (issue 18).  ``core`` for the framework adapters,
    whose expected failures are recorded on the core space so far, and for a
    third party's backend, whose first run is best a quick look (it asks for
    the whole space with ``--osd-space=full``).
    """
    return "full" if builtin_name(spec) in BUILTIN else "core"


def builtin_name(spec: str, entry_points: Iterable[metadata.EntryPoint] | None = None) -> str | None:
    """The built-in backend or shipped adapter whose own target `spec` resolves to, else None.

    Only such a spec gets that backend's shipped expected failures: a
    third-party class that happens to call itself ``torch-dsd`` must not
    inherit torch-dsd's recorded defects (they would hide its own).
    """
    base, _ = parse_spec(spec)
    target = _target(base, entry_points)
    for name, own in {**BUILTIN, **ADAPTERS}.items():
        if own == target:
            return name
    return None


def resolve_backend(spec: str, entry_points: Iterable[metadata.EntryPoint] | None = None) -> Any:
    """Return the backend class (or factory / instance) that `spec` names.

    With arguments (``target(key=value)``) the target is called with them and
    what it returns is the backend, checked like any other.
    """
    base, kwargs = parse_spec(spec)
    obj = _load_target(spec, _target(base, entry_points))
    if kwargs is not None:
        try:
            obj = obj(**kwargs)
        except Exception as exc:
            raise BackendSpecError(f"backend {spec!r}: calling {base} raised {exc!r}") from exc
    return _checked(spec, obj)


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
    return obj


def _checked(spec: str, obj: Any) -> Any:
    # An adapter imports its framework lazily and names it in ``requires``
    # ({module: how to install it}), so it can be listed, and refused with
    # the install line, where the framework is missing.
    for module, install in getattr(obj, "requires", {}).items():
        if importlib.util.find_spec(module) is None:
            raise BackendNotInstalled(f"backend {spec!r} needs {module!r}, which is not installed: {install}")
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
    """A fresh backend instance for `spec` (a class is called; an instance is used as is).

    With arguments the factory is called again here, so each example gets
    what the factory makes afresh.
    """
    obj = resolve_backend(spec)
    return obj() if isinstance(obj, type) else obj
