"""What a tree holds, found by one walk shared by every question about it.

Why its own module: parameters (with their FQNs, shapes, dtypes, freezes,
whether an unused branch hides them, and tied aliases), the units a plan may
wrap, buffers and feature tags all follow from walking the tree once in
registration order; `TreeSpec` answers from the cached walk (`layout`), and the
module builder (`_modules`) names children with the same `names` rule, so
spec FQNs and built FQNs cannot drift apart.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._nodes import (
    CONTAINER_TYPES,
    KIND_TAGS,
    BatchNormSpec,
    Conv1dSpec,
    Conv2dSpec,
    EmbeddingSpec,
    LayerNormSpec,
    LinearSpec,
    ModuleDictSpec,
    ModuleListSpec,
    ParamSpec,
    TiedLinearSpec,
    UnusedSpec,
)

if TYPE_CHECKING:
    from ._tree import TreeSpec


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a tree, as `named_parameters()` will yield it."""

    fqn: str
    shape: tuple[int, ...]
    dtype: str
    freeze: int | None  # None: trainable; 0: frozen at build; k: frozen after k steps
    used: bool  # False: in an unused branch (never gets a gradient)
    sparse: bool = False
    alias_of: str | None = None  # tied: the canonical FQN this name shares a Parameter with
    width: int | None = None  # a bare parameter: the width of the activation it is added to


@dataclass(frozen=True)
class UnitInfo:
    """One submodule a plan may wrap on its own."""

    fqn: str
    kind: type
    used: bool


@dataclass(frozen=True)
class _Layout:
    params: tuple[ParamInfo, ...]  # registration order, aliases included
    units: tuple[UnitInfo, ...]  # preorder: outermost first
    buffers: tuple[str, ...]
    tags: frozenset[str]


def _names(container, children) -> list[str]:
    names, modules = [], 0
    for i, child in enumerate(children):
        inner = child.child if isinstance(child, UnusedSpec) else child
        if isinstance(inner, ParamSpec):
            names.append(f"p{i}")
        elif isinstance(container, ModuleDictSpec):
            names.append(_dict_key(i))
        else:
            names.append(str(modules))
            modules += 1
    return names


def _dict_key(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[i] if i < len(letters) else f"k{i}"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _out_width(node, width: int) -> int:
    node = node.child if isinstance(node, UnusedSpec) else node
    if isinstance(node, (LinearSpec, Conv1dSpec, Conv2dSpec)):
        return node.out
    if isinstance(node, CONTAINER_TYPES):
        for child in node.children:
            if not isinstance(child, UnusedSpec):
                width = _out_width(child, width)
    return width


class _Walker:
    """Walks a tree in registration order, collecting params, units, buffers and tags."""

    def __init__(self) -> None:
        self.params: list[ParamInfo] = []
        self.units: list[UnitInfo] = []
        self.buffers: list[str] = []
        self.tags: set[str] = set()

    def container(self, node, prefix: str, width: int, dtype: str, freeze, used: bool, depth: int) -> None:
        names = _names(node, node.children)
        dtype = node.dtype or dtype
        freeze = node.freeze if node.freeze is not None else freeze
        # named_parameters() yields a module's own parameters before its
        # children's: bare params first, whatever their position.
        w = width
        plan = []
        for name, child in zip(names, node.children):
            child_used = used and not isinstance(child, UnusedSpec)
            plan.append((name, child, w, child_used))
            if not isinstance(child, UnusedSpec):
                w = _out_width(child, w)
        for name, child, w_in, child_used in plan:
            inner = child.child if isinstance(child, UnusedSpec) else child
            if isinstance(inner, ParamSpec):
                self.leaf(inner, _join(prefix, name), w_in, dtype, freeze, child_used)
        for name, child, w_in, child_used in plan:
            inner = child.child if isinstance(child, UnusedSpec) else child
            if isinstance(child, UnusedSpec):
                self.tags.add("unused branch")
            if isinstance(inner, ParamSpec):
                continue
            fqn = _join(prefix, name)
            self.units.append(UnitInfo(fqn, type(inner), child_used))
            if isinstance(inner, CONTAINER_TYPES):
                if depth >= 1:
                    self.tags.add("nested")
                self.tags.add(KIND_TAGS[type(inner)])
                self.container(inner, fqn, w_in, dtype, freeze, child_used, depth + 1)
            else:
                self.leaf(inner, fqn, w_in, dtype, freeze, child_used)

    def leaf(self, node, fqn: str, w: int, dtype: str, freeze, used: bool) -> None:
        dtype = node.dtype or dtype
        freeze = node.freeze if node.freeze is not None else freeze
        self.tags.add(KIND_TAGS[type(node)])

        def param(name: str, shape, **kw) -> None:
            self.params.append(ParamInfo(_join(fqn, name) if name else fqn, tuple(shape), dtype, freeze, used, **kw))

        if isinstance(node, LinearSpec):
            param("weight", (node.out, w))
            if node.bias:
                param("bias", (node.out,))
        elif isinstance(node, Conv1dSpec):
            param("weight", (node.out, w, node.kernel))
            if node.bias:
                param("bias", (node.out,))
        elif isinstance(node, Conv2dSpec):
            param("weight", (node.out, w, *node.kernel))
            if node.bias:
                param("bias", (node.out,))
        elif isinstance(node, EmbeddingSpec):
            param("weight", (node.num, w), sparse=node.sparse)
            if node.sparse:
                self.tags.add("sparse embedding")
        elif isinstance(node, LayerNormSpec):
            if node.affine:
                param("weight", (w,))
                if node.bias:
                    param("bias", (w,))
        elif isinstance(node, BatchNormSpec):
            if node.affine:
                param("weight", (w,))
                param("bias", (w,))
            if node.stats:
                self.buffers += [_join(fqn, b) for b in ("running_mean", "running_var", "num_batches_tracked")]
        elif isinstance(node, ParamSpec):
            param("", {"vector": (w,), "1-element": (1,), "0-d": ()}[node.shape], width=w)
        elif isinstance(node, TiedLinearSpec):
            param("first.weight", (w, w))
            if node.bias:
                param("first.bias", (w,))
            param("second.weight", (w, w), alias_of=_join(fqn, "first.weight"))
        else:  # pragma: no cover - the spec validates node types
            raise TypeError(f"not a model node: {node!r}")


@functools.lru_cache(maxsize=4096)
def _layout(spec: "TreeSpec") -> _Layout:
    walker = _Walker()
    root = ModuleListSpec(spec.layers)
    walker.units.append(UnitInfo("layers", ModuleListSpec, True))
    walker.container(root, "layers", spec.width, spec.dtype, None, True, 0)
    tags = set(walker.tags)
    canonical = [p for p in walker.params if p.alias_of is None]
    dtypes = {p.dtype for p in canonical} or {spec.dtype}
    tags |= {f"dtype:{d}" for d in dtypes}
    if len(dtypes) > 1:
        tags.add("dtype:mixed")
    shapes = [p.shape for p in canonical]
    if any(len(s) == 0 for s in shapes):
        tags.add("0-d param")
    if any(len(s) >= 1 and all(d == 1 for d in s) for s in shapes):
        tags.add("1-element param")
    if any(len(s) >= 3 for s in shapes):
        tags.add("3-d+ param")
    frozen = {p.freeze for p in canonical if p.freeze is not None}
    if frozen:
        tags.add("frozen")
    if 0 in frozen:
        tags.add("frozen at build")
    if frozen - {0}:
        tags.add("frozen after steps")
    if walker.buffers:
        tags.add("buffers")
    if any(not p.used for p in canonical):
        tags.add("param without grad")
    if any(not p.used and p.freeze != 0 for p in canonical):
        # requires grad, yet never gets one: no optimizer state, ever
        tags.add("unused trainable param")
    if any(p.used and p.freeze != 0 for p in canonical):
        tags.add("used trainable param")  # gets a gradient in the first step
    if all(len(p.shape) == 0 for p in canonical if p.freeze != 0):
        # no optimizer state tensor will have a dimension (all 0-d or none)
        tags.add("no trainable param with a dim")
    return _Layout(tuple(walker.params), tuple(walker.units), tuple(walker.buffers), frozenset(tags))
