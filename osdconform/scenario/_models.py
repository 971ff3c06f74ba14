"""The model dimension of a scenario: model specs, the modules they build, their inputs.

A model is a *tree* of small frozen dataclasses (`TreeSpec` at the root):
leaves are layers (`LinearSpec`, `Conv1dSpec`, `Conv2dSpec`, `EmbeddingSpec`,
`LayerNormSpec`, `BatchNormSpec`, `TiedLinearSpec`) or bare parameters
(`ParamSpec`); containers (`SequentialSpec`, `ModuleListSpec`,
`ModuleDictSpec`) nest them; `UnusedSpec` marks a branch whose output forward
never uses (its parameters get no gradient, so no optimizer state).  Any node
may carry its own ``dtype`` (mixed precision) and ``freeze`` (``0``: frozen at
build; ``k > 0``: frozen after ``k`` training steps, applied by `apply_freezes`).
The tree stays picklable, hashable, and its ``repr`` is Python that rebuilds it.

Why a tree and not a list of layers: checkpointing bugs live where FQNs get
interesting (nesting, containers, dict keys, tied parameters, parameters on a
non-leaf module), where state is missing (frozen, unused), and where shapes are
awkward (0-d, one element, 3-d/4-d conv weights, dims smaller than the world).

How data flows: every node maps a hidden batch ``h`` of shape ``(rows, w)`` to
``(rows, w')``; containers call their children in order, skipping unused ones.
The input (`model_inputs`) is a pair ``(features, indices)``: a float batch of
the tree's ``width`` and integer rows that embeddings look up (modulo their
size), so every tree accepts the same kind of input and `select_rows` can
slice it for data parallelism.

`ModelSpec` (an MLP given by its widths) is kept as a shorthand; it builds the
tree of `Linear` layers with the same FQNs (``layers.<i>.weight``).

Module classes are module-level so they pickle by reference.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Iterator, Union

import torch
from torch import nn

#: Dtype names a model may use (a tree mixing several is "mixed").
DTYPES = ("float32", "float64", "bfloat16")
#: Shapes a bare parameter may take: ``()``, ``(1,)`` or ``(width,)``.
PARAM_SHAPES = ("vector", "1-element", "0-d")
#: Integer inputs are drawn in ``[0, INDEX_RANGE)`` and reduced modulo each
#: embedding's size.
INDEX_RANGE = 64


# -- the tree -------------------------------------------------------------------


class _Node:
    """Common behaviour of tree nodes: a short repr that still rebuilds the node.

    Fields left at their default are not printed, so a failing scenario reads
    ``LinearSpec(out=1)`` rather than a row of ``None``s.
    """

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default and type(value) is type(f.default):
                continue
            parts.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _check_common(node) -> None:
    if node.dtype is not None and node.dtype not in DTYPES:
        raise ValueError(f"unknown dtype {node.dtype!r}; known: {DTYPES}")
    if node.freeze is not None and node.freeze < 0:
        raise ValueError(f"freeze must be None or >= 0, got {node.freeze}")


@dataclass(frozen=True, repr=False)
class LinearSpec(_Node):
    """``nn.Linear(w, out, bias)`` followed by ``tanh``."""

    out: int
    bias: bool = False
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class Conv1dSpec(_Node):
    """``nn.Conv1d(w, out, kernel, padding=kernel // 2)`` on ``h`` as a length-1 signal.

    The weight is 3-d ``(out, w, kernel)``; odd kernels keep the length at 1.
    """

    out: int
    kernel: int = 1
    bias: bool = False
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class Conv2dSpec(_Node):
    """``nn.Conv2d(w, out, kernel, padding=kernel // 2)`` on ``h`` as a 1x1 image (4-d weight)."""

    out: int
    kernel: tuple[int, int] = (1, 1)
    bias: bool = False
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class EmbeddingSpec(_Node):
    """``nn.Embedding(num, w)``: adds the rows looked up by ``indices % num`` to ``h``.

    ``sparse=True`` gives sparse gradients (only ``SparseAdam`` takes them).
    """

    num: int
    sparse: bool = False
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class LayerNormSpec(_Node):
    """``nn.LayerNorm(w, elementwise_affine=affine, bias=bias)`` (no params without affine)."""

    affine: bool = True
    bias: bool = True
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class BatchNormSpec(_Node):
    """``nn.BatchNorm1d(w, affine, track_running_stats=stats)``: buffers when ``stats``."""

    affine: bool = True
    stats: bool = True
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class ParamSpec(_Node):
    """A bare ``nn.Parameter`` attribute of the enclosing container, added to ``h``.

    ``shape``: ``"vector"`` (``(w,)``), ``"1-element"`` (``(1,)``) or ``"0-d"`` (``()``).
    """

    shape: str = "vector"
    dtype: str | None = None
    freeze: int | None = None

    def __post_init__(self) -> None:
        if self.shape not in PARAM_SHAPES:
            raise ValueError(f"unknown bare-parameter shape {self.shape!r}; known: {PARAM_SHAPES}")


@dataclass(frozen=True, repr=False)
class TiedLinearSpec(_Node):
    """Two ``nn.Linear(w, w)`` sharing one weight: ``second.weight is first.weight``.

    One Parameter under two FQNs (``<node>.first.weight``, the canonical one,
    and ``<node>.second.weight``).  The node is one unit: a plan that split the
    two linears apart would break the tie.
    """

    bias: bool = False
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class SequentialSpec(_Node):
    """An ``nn.Sequential`` (children named ``0``, ``1``, ...; bare params ``p<i>``)."""

    children: tuple = ()
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class ModuleListSpec(_Node):
    """An ``nn.ModuleList`` (modules ``0``, ``1``, ...; bare params ``p<i>``)."""

    children: tuple = ()
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class ModuleDictSpec(_Node):
    """An ``nn.ModuleDict`` keyed ``a``, ``b``, ... by position (bare params ``p<i>``)."""

    children: tuple = ()
    dtype: str | None = None
    freeze: int | None = None


@dataclass(frozen=True, repr=False)
class UnusedSpec(_Node):
    """``child`` is built and registered, but forward never calls it (no gradients)."""

    child: object


LEAF_TYPES = (
    LinearSpec,
    Conv1dSpec,
    Conv2dSpec,
    EmbeddingSpec,
    LayerNormSpec,
    BatchNormSpec,
    ParamSpec,
    TiedLinearSpec,
)
CONTAINER_TYPES = (SequentialSpec, ModuleListSpec, ModuleDictSpec)
Node = Union[
    LinearSpec, Conv1dSpec, Conv2dSpec, EmbeddingSpec, LayerNormSpec, BatchNormSpec,
    ParamSpec, TiedLinearSpec, SequentialSpec, ModuleListSpec, ModuleDictSpec, UnusedSpec,
]

#: Feature tag of each leaf / container kind.
KIND_TAGS = {
    LinearSpec: "module:linear",
    Conv1dSpec: "module:conv1d",
    Conv2dSpec: "module:conv2d",
    EmbeddingSpec: "module:embedding",
    LayerNormSpec: "module:layernorm",
    BatchNormSpec: "module:batchnorm",
    ParamSpec: "bare param",
    TiedLinearSpec: "tied",
    SequentialSpec: "container:sequential",
    ModuleListSpec: "container:modulelist",
    ModuleDictSpec: "container:moduledict",
}


#: Every feature tag a model can have (besides ``dtype:*``), for coverage reports.
MODEL_TAGS = frozenset(
    set(KIND_TAGS.values())
    | {
        "nested",
        "unused branch",
        "sparse embedding",
        "0-d param",
        "1-element param",
        "3-d+ param",
        "frozen",
        "frozen at build",
        "frozen after steps",
        "buffers",
        "param without grad",
        "unused trainable param",
        "used trainable param",
        "no trainable param with a dim",
        "dtype:mixed",
    }
    | {f"dtype:{d}" for d in DTYPES}
)
#: Tags of `TreeSpec.world_features` (how parameters split over the ranks).
WORLD_TAGS = frozenset({"dim < world", "dim not divisible by world"})


# -- what a tree holds: one walk, shared by every question ------------------------


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
            param("", {"vector": (w,), "1-element": (1,), "0-d": ()}[node.shape])
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


def _validate(node, path: str) -> None:
    if isinstance(node, UnusedSpec):
        _validate(node.child, path)
        return
    if not isinstance(node, LEAF_TYPES + CONTAINER_TYPES):
        raise TypeError(f"{path}: not a model node: {node!r}")
    _check_common(node)
    if isinstance(node, (LinearSpec, Conv1dSpec, Conv2dSpec)) and node.out < 1:
        raise ValueError(f"{path}: out must be >= 1, got {node.out}")
    if isinstance(node, Conv1dSpec) and node.kernel % 2 != 1:
        raise ValueError(f"{path}: kernel must be odd (length stays 1), got {node.kernel}")
    if isinstance(node, Conv2dSpec) and any(k % 2 != 1 for k in node.kernel):
        raise ValueError(f"{path}: kernel sizes must be odd, got {node.kernel}")
    if isinstance(node, EmbeddingSpec) and node.num < 1:
        raise ValueError(f"{path}: num must be >= 1, got {node.num}")
    if isinstance(node, CONTAINER_TYPES):
        if not isinstance(node.children, tuple):
            raise TypeError(f"{path}: children must be a tuple")
        for i, child in enumerate(node.children):
            _validate(child, f"{path}[{i}]")


@dataclass(frozen=True)
class TreeSpec:
    """A model: input ``width``, the top-level nodes ``layers``, the default ``dtype``.

    The top level is an ``nn.ModuleList`` named ``layers``, so FQNs read
    ``layers.0.weight``, ``layers.1.a.bias``, ``layers.p2`` (a bare param).
    """

    width: int
    layers: tuple
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; known: {DTYPES}")
        if not isinstance(self.layers, tuple) or not self.layers:
            raise ValueError("a model needs a non-empty tuple of layers")
        for i, node in enumerate(self.layers):
            _validate(node, f"layers[{i}]")
        if not self.param_fqns():
            raise ValueError("a model needs at least one parameter (an optimizer needs one)")

    # -- the fixed interface --

    def param_fqns(self) -> tuple[str, ...]:
        """Canonical FQNs in registration order (a tied parameter once, under its first name)."""
        return tuple(p.fqn for p in self._params())

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.fqn: p.shape for p in self._params()}

    def layer_fqns(self) -> tuple[str, ...]:
        """Submodules a plan may wrap on their own (FSDP units), outermost first.

        Every one has a forward that its parent calls (or, for an unused
        branch, would call), and none splits a tied parameter.
        """
        return tuple(u.fqn for u in _layout(self).units)

    def linear_fqns(self) -> tuple[str, ...]:
        """FQNs of the ``nn.Linear`` submodules a tensor-parallel plan may split.

        Each is fed a plain (replicated) tensor and its output is used as a
        plain tensor, so each can be parallelised on its own (Colwise with
        replicated output, or Rowwise with replicated input).  The linears of
        a `TiedLinearSpec` are left out: splitting one would break the tie.
        """
        return tuple(u.fqn for u in _layout(self).units if u.kind is LinearSpec and u.used)

    def sparse_param_fqns(self) -> tuple[str, ...]:
        """Parameters of ``Embedding(sparse=True)``: only ``SparseAdam`` takes their gradients."""
        return tuple(p.fqn for p in self._params() if p.sparse)

    def unit_fqns(self, kind: type) -> tuple[str, ...]:
        """FQNs of the submodules built from spec type `kind` (e.g. `BatchNormSpec`)."""
        return tuple(u.fqn for u in _layout(self).units if u.kind is kind)

    def dtypes(self) -> frozenset[str]:
        """Dtype names of the parameters (the default dtype if there are none)."""
        return frozenset(p.dtype for p in self._params()) or frozenset({self.dtype})

    def features(self) -> frozenset[str]:
        """Feature tags: ``dtype:*``, ``module:*``, ``container:*``, ``tied``, ``frozen``, ..."""
        return _layout(self).tags

    def world_features(self, world_size: int) -> frozenset[str]:
        """Tags about how the parameters split over `world_size` ranks (dim 0, as FSDP shards)."""
        tags = set()
        if world_size > 1:
            dims0 = [p.shape[0] for p in self._params() if p.shape]
            if any(d < world_size for d in dims0):
                tags.add("dim < world")  # chunked: some rank holds an empty shard
            if any(d % world_size for d in dims0):
                tags.add("dim not divisible by world")
        return frozenset(tags)

    def describe(self) -> str:
        lines = [f"tree of input width {self.width}, {self.dtype} unless said otherwise:"]
        lines += _describe_nodes(self.layers, "layers", self.width, "  ", ModuleListSpec(self.layers))
        return "\n".join(lines)

    # -- more questions about the tree --

    @property
    def num_layers(self) -> int:
        """How many submodules a plan may wrap (``len(layer_fqns())``)."""
        return len(self.layer_fqns())

    def param_dtypes(self) -> dict[str, str]:
        return {p.fqn: p.dtype for p in self._params()}

    def frozen_after(self) -> dict[str, int]:
        """``fqn -> k``: frozen after ``k`` steps (``0``: frozen when built)."""
        return {p.fqn: p.freeze for p in self._params() if p.freeze is not None}

    def unused_param_fqns(self) -> tuple[str, ...]:
        """Parameters in unused branches: they never get a gradient."""
        return tuple(p.fqn for p in self._params() if not p.used)

    def tied_fqns(self) -> dict[str, str]:
        """``alias fqn -> canonical fqn`` for every tied parameter."""
        return {p.fqn: p.alias_of for p in _layout(self).params if p.alias_of is not None}

    def buffer_fqns(self) -> tuple[str, ...]:
        return _layout(self).buffers

    def input_dtype(self) -> str:
        return self.dtype

    def tree(self) -> "TreeSpec":
        return self

    def _params(self) -> Iterator[ParamInfo]:
        return (p for p in _layout(self).params if p.alias_of is None)


def _describe_nodes(children, prefix: str, width: int, indent: str, container) -> list[str]:
    lines = []
    for name, child in zip(_names(container, children), children):
        unused = isinstance(child, UnusedSpec)
        node = child.child if unused else child
        fqn = _join(prefix, name)
        extra = []
        if node.dtype:
            extra.append(node.dtype)
        if node.freeze == 0:
            extra.append("frozen")
        elif node.freeze:
            extra.append(f"frozen after {node.freeze} step(s)")
        if unused:
            extra.append("UNUSED")
        note = f" [{', '.join(extra)}]" if extra else ""
        lines.append(f"{indent}{fqn}: {_describe_leaf(node, width)}{note}")
        if isinstance(node, CONTAINER_TYPES):
            lines += _describe_nodes(node.children, fqn, width, indent + "  ", node)
        if not unused:
            width = _out_width(node, width)
    return lines


def _describe_leaf(node, w: int) -> str:
    b = " +bias" if getattr(node, "bias", False) else ""
    if isinstance(node, LinearSpec):
        return f"Linear {w} -> {node.out}{b}"
    if isinstance(node, Conv1dSpec):
        return f"Conv1d {w} -> {node.out}, kernel {node.kernel}{b}"
    if isinstance(node, Conv2dSpec):
        return f"Conv2d {w} -> {node.out}, kernel {node.kernel}{b}"
    if isinstance(node, EmbeddingSpec):
        return f"Embedding {node.num} x {w}{' sparse' if node.sparse else ''}"
    if isinstance(node, LayerNormSpec):
        return f"LayerNorm {w}" + ("" if node.affine else " (no affine)") + ("" if node.bias else " (no bias)")
    if isinstance(node, BatchNormSpec):
        return f"BatchNorm1d {w}" + ("" if node.affine else " (no affine)") + ("" if node.stats else " (no running stats)")
    if isinstance(node, ParamSpec):
        return f"bare Parameter ({node.shape}, width {w})"
    if isinstance(node, TiedLinearSpec):
        return f"TiedLinear {w} -> {w} -> {w} (first.weight is second.weight){b}"
    return f"{type(node).__name__[:-4]}"


@dataclass(frozen=True)
class ModelSpec:
    """An MLP: ``Linear(dims[i], dims[i+1])`` layers joined by ``tanh``.

    A shorthand for the `TreeSpec` of those layers (same FQNs:
    ``layers.<i>.weight`` and ``layers.<i>.bias``); every question is
    answered by that tree.
    """

    dims: tuple[int, ...]
    bias: tuple[bool, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if len(self.dims) < 2:
            raise ValueError(f"an MLP needs at least two widths, got dims={self.dims}")
        if len(self.bias) != len(self.dims) - 1:
            raise ValueError(f"bias has {len(self.bias)} flags for {len(self.dims) - 1} layers")
        if min(self.dims) < 1:
            raise ValueError(f"widths must be >= 1, got dims={self.dims}")

    def tree(self) -> TreeSpec:
        return TreeSpec(
            width=self.dims[0],
            layers=tuple(LinearSpec(out=d, bias=b) for d, b in zip(self.dims[1:], self.bias)),
            dtype=self.dtype,
        )

    def layer_fqns(self) -> tuple[str, ...]:
        """Each layer (the ``layers`` list itself is not offered, as before)."""
        return tuple(f"layers.{i}" for i in range(len(self.dims) - 1))

    @property
    def num_layers(self) -> int:
        return len(self.dims) - 1

    def linear_fqns(self) -> tuple[str, ...]:
        return self.layer_fqns()

    def describe(self) -> str:
        widths = " -> ".join(str(d) for d in self.dims)
        biases = "".join("b" if b else "-" for b in self.bias)
        return f"MLP {widths} ({self.dtype}, bias per layer: {biases})"

    # The rest of the interface: the tree's answers.
    def param_fqns(self) -> tuple[str, ...]:
        return self.tree().param_fqns()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.tree().param_shapes()

    def sparse_param_fqns(self) -> tuple[str, ...]:
        return ()

    def dtypes(self) -> frozenset[str]:
        return frozenset({self.dtype})

    def features(self) -> frozenset[str]:
        return self.tree().features()

    def world_features(self, world_size: int) -> frozenset[str]:
        return self.tree().world_features(world_size)

    def param_dtypes(self) -> dict[str, str]:
        return self.tree().param_dtypes()

    def frozen_after(self) -> dict[str, int]:
        return {}

    def unused_param_fqns(self) -> tuple[str, ...]:
        return ()

    def tied_fqns(self) -> dict[str, str]:
        return {}

    def buffer_fqns(self) -> tuple[str, ...]:
        return ()


# -- building -------------------------------------------------------------------


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


class _Container:
    """Forward shared by the container modules: run the children in order.

    ``_steps`` holds, per child, its attribute name, how to apply it and its
    dtype (the hidden batch is cast to each child's dtype); unused children
    have no step.  The subclasses below are the torch containers with this
    forward, so FQNs and ``isinstance`` stay those of torch's containers.
    """

    def forward(self, h: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        for name, how, dtype in self._steps:
            h = h.to(dtype)
            if how == "param":
                h = h + getattr(self, name)
            else:
                h = _APPLY[how](self._modules[name], h, indices)
        return h


def _linear(m, h, idx):
    return torch.tanh(m(h))


def _conv1d(m, h, idx):
    return torch.tanh(m(h.unsqueeze(-1)).squeeze(-1))


def _conv2d(m, h, idx):
    return torch.tanh(m(h[:, :, None, None]).flatten(1))


def _embedding(m, h, idx):
    return h + m(idx % m.num_embeddings)


def _norm(m, h, idx):
    return m(h)


def _call(m, h, idx):
    return m(h, idx)


_APPLY = {
    "linear": _linear,
    "conv1d": _conv1d,
    "conv2d": _conv2d,
    "embedding": _embedding,
    "norm": _norm,
    "call": _call,
}
_HOW = {
    LinearSpec: "linear",
    Conv1dSpec: "conv1d",
    Conv2dSpec: "conv2d",
    EmbeddingSpec: "embedding",
    LayerNormSpec: "norm",
    BatchNormSpec: "norm",
    TiedLinearSpec: "call",
    SequentialSpec: "call",
    ModuleListSpec: "call",
    ModuleDictSpec: "call",
}


class Sequential(_Container, nn.Sequential):
    pass


class ModuleList(_Container, nn.ModuleList):
    pass


class ModuleDict(_Container, nn.ModuleDict):
    pass


class TiedLinear(nn.Module):
    """``tanh(second(tanh(first(h))))`` where ``second.weight is first.weight``."""

    def __init__(self, width: int, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.first = nn.Linear(width, width, bias=bias, dtype=dtype)
        self.second = nn.Linear(width, width, bias=False, dtype=dtype)
        self.second.weight = self.first.weight

    def forward(self, h, indices):
        return torch.tanh(self.second(torch.tanh(self.first(h))))


class TreeModel(nn.Module):
    """The root: ``layers`` (a `ModuleList`) applied to ``(features, indices)``."""

    def __init__(self, spec: TreeSpec) -> None:
        super().__init__()
        self.layers = _build_container(ModuleListSpec(spec.layers), spec.width, spec.dtype)

    def forward(self, inputs):
        features, indices = inputs
        return self.layers(features, indices)


_CONTAINER_CLASSES = {SequentialSpec: Sequential, ModuleListSpec: ModuleList, ModuleDictSpec: ModuleDict}


def _build_container(node, width: int, dtype: str) -> nn.Module:
    dtype = node.dtype or dtype
    module = _CONTAINER_CLASSES[type(node)]()
    steps = []
    w = width
    for name, child in zip(_names(node, node.children), node.children):
        unused = isinstance(child, UnusedSpec)
        inner = child.child if unused else child
        child_dtype = inner.dtype or dtype
        if isinstance(inner, ParamSpec):
            shape = {"vector": (w,), "1-element": (1,), "0-d": ()}[inner.shape]
            module.register_parameter(name, nn.Parameter(torch.randn(shape, dtype=_torch_dtype(child_dtype))))
            how = "param"
        else:
            sub = (
                _build_container(inner, w, dtype)
                if isinstance(inner, CONTAINER_TYPES)
                else _build_leaf(inner, w, _torch_dtype(child_dtype))
            )
            if isinstance(node, ModuleListSpec):
                module.append(sub)
            else:
                module.add_module(name, sub)
            how = _HOW[type(inner)]
        if not unused:
            steps.append((name, how, _torch_dtype(child_dtype)))
            w = _out_width(inner, w)
    module._steps = steps
    return module


def _build_leaf(node, w: int, dtype: torch.dtype) -> nn.Module:
    if isinstance(node, LinearSpec):
        return nn.Linear(w, node.out, bias=node.bias, dtype=dtype)
    if isinstance(node, Conv1dSpec):
        return nn.Conv1d(w, node.out, node.kernel, padding=node.kernel // 2, bias=node.bias, dtype=dtype)
    if isinstance(node, Conv2dSpec):
        pad = tuple(k // 2 for k in node.kernel)
        return nn.Conv2d(w, node.out, node.kernel, padding=pad, bias=node.bias, dtype=dtype)
    if isinstance(node, EmbeddingSpec):
        return nn.Embedding(node.num, w, sparse=node.sparse, dtype=dtype)
    if isinstance(node, LayerNormSpec):
        return nn.LayerNorm(w, elementwise_affine=node.affine, bias=node.bias, dtype=dtype)
    if isinstance(node, BatchNormSpec):
        return nn.BatchNorm1d(w, affine=node.affine, track_running_stats=node.stats, dtype=dtype)
    if isinstance(node, TiedLinearSpec):
        return TiedLinear(w, node.bias, dtype)
    raise TypeError(f"not a model node: {node!r}")  # pragma: no cover


AnyModelSpec = Union[TreeSpec, ModelSpec]


def build_model(spec: AnyModelSpec, device: torch.device) -> nn.Module:
    """The module of `spec` on `device`, initialised from torch's global RNG.

    Built on the CPU and then moved, so the initial values do not depend on
    the device's RNG.  Parameters frozen at build have ``requires_grad=False``.
    """
    tree = spec.tree()
    module = TreeModel(tree)
    for fqn, k in tree.frozen_after().items():
        if k == 0:
            module.get_parameter(fqn).requires_grad_(False)
    return module.to(device)


def apply_freezes(module: nn.Module, spec: AnyModelSpec, step: int) -> None:
    """Freeze the parameters due before training step `step` (0-based): ``0 < k <= step``.

    Called by `train` before each step, so resuming at ``first_step`` freezes
    what an uninterrupted run would have frozen by then.
    """
    for fqn, k in spec.tree().frozen_after().items():
        if 0 < k <= step:
            module.get_parameter(fqn).requires_grad_(False)


def model_inputs(spec: AnyModelSpec, rows: int, gen: torch.Generator, device: torch.device):
    """`rows` input rows ``(features, indices)``, drawn from `gen` (identical on every rank)."""
    tree = spec.tree()
    features = torch.randn(rows, tree.width, generator=gen)
    indices = torch.randint(0, INDEX_RANGE, (rows,), generator=gen)
    return (features.to(device=device, dtype=_torch_dtype(tree.dtype)), indices.to(device))


def select_rows(inputs, start: int, stop: int):
    """Rows ``start:stop`` of what `model_inputs` returned (a data-parallel slice)."""
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    return tuple(t[start:stop] for t in inputs)


def loss(output: torch.Tensor) -> torch.Tensor:
    """The training loss of a model output: the mean of its squares."""
    return output.square().mean()
