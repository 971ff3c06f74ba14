"""`TreeSpec`: the root of a model tree, and every question asked about a model.

Why its own module: plans, optimizers, oracles and coverage ask a model the
same fixed questions (its FQNs, shapes, dtypes, units, freezes, unused and
tied parameters, buffers, feature tags); `TreeSpec` is where they are
answered (from the walk in `_layout`) and where a model describes itself
for failure reports.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

from ._layout import ParamInfo, _join, _layout, _names, _out_width
from ._nodes import (
    CONTAINER_TYPES,
    DTYPES,
    BatchNormSpec,
    Conv1dSpec,
    Conv2dSpec,
    EmbeddingSpec,
    LayerNormSpec,
    LinearSpec,
    ModuleListSpec,
    ParamSpec,
    TiedLinearSpec,
    UnusedSpec,
    _validate,
)


@dataclass(frozen=True)
class TreeSpec:
    """A model: input ``width``, the top-level nodes ``layers``, the default ``dtype``.

    The top level is an ``nn.ModuleList`` named ``layers``, so FQNs read
    ``layers.0.weight``, ``layers.1.a.bias``, ``layers.p2`` (a bare param).

    ``grad_dtype``: a dtype every parameter accumulates its gradients in
    (``Tensor.grad_dtype``: float32 weights with bfloat16 gradients, the
    master-weight arrangement of mixed-precision training), or None for the
    parameters' own.  Only optimizers that can step such gradients take it
    (`_catalogue.GRAD_DTYPE_OPTIMIZERS`), and only without a plan
    (`_refusals.accepts`).
    """

    width: int
    layers: tuple
    dtype: str = "float32"
    grad_dtype: str | None = None

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; known: {DTYPES}")
        if self.grad_dtype not in (None, *DTYPES):
            raise ValueError(f"unknown grad_dtype {self.grad_dtype!r}; known: {DTYPES}")
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

    def units(self) -> tuple:
        """Every submodule a plan may wrap (`UnitInfo`: FQN, spec type, used), outermost first."""
        return _layout(self).units

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

    def __repr__(self) -> str:
        # As the dataclass writes it, with grad_dtype only where set: reprs
        # written before the field existed (reproducers, entries) stay valid.
        more = f", grad_dtype={self.grad_dtype!r}" if self.grad_dtype is not None else ""
        return f"TreeSpec(width={self.width!r}, layers={self.layers!r}, dtype={self.dtype!r}{more})"

    def features(self) -> frozenset[str]:
        """Feature tags: ``dtype:*``, ``module:*``, ``container:*``, ``tied``, ``frozen``,
        ``grad dtype:*``, ..."""
        tags = _layout(self).tags
        return tags | {f"grad dtype:{self.grad_dtype}"} if self.grad_dtype is not None else tags

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
        grads = f", gradients in {self.grad_dtype}" if self.grad_dtype is not None else ""
        lines = [f"tree of input width {self.width}, {self.dtype} unless said otherwise{grads}:"]
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

    def freezable_fqns(self) -> tuple[str, ...]:
        """The modules and bare parameters (by FQN) whose parameters are never frozen
        (`with_frozen` can freeze them)."""
        frozen = self.frozen_after()
        out = []
        for fqn in _leaf_fqns(ModuleListSpec(self.layers), "layers"):
            params = [p for p in self.param_fqns() if p == fqn or p.startswith(fqn + ".")]
            if params and not any(p in frozen for p in params):
                out.append(fqn)
        return tuple(out)

    def unfreezable_fqns(self) -> tuple[str, ...]:
        """The modules and bare parameters (by FQN) frozen mid-run by a freeze of their
        own (``freeze=k``, ``k > 0``): ``with_frozen(fqn, None)`` trains them again.

        Not those frozen at build (``k = 0``): a plan built over a parameter that
        does not require grad leaves it out (DDP syncs no gradient of it), so
        training it later is a job's mistake, not a checkpoint's.
        """
        frozen = self.frozen_after()
        out = []
        for fqn in _leaf_fqns(ModuleListSpec(self.layers), "layers"):
            after = self.with_frozen(fqn, None).frozen_after()
            thawed = {p: k for p, k in frozen.items() if after.get(p) != k}
            if thawed and all(k > 0 for k in thawed.values()):
                out.append(fqn)
        return tuple(out)

    def with_frozen(self, fqn: str, after: int | None) -> "TreeSpec":
        """This tree with the module or bare parameter `fqn` frozen after `after` steps
        (as a training job freezes part of its model mid-run), or with its own
        freeze taken away (`after` None: it trains again, as a job unfreezes it)."""
        root = ModuleListSpec(self.layers)
        if fqn not in _leaf_fqns(root, "layers"):
            raise KeyError(f"no module or bare parameter {fqn!r} in the model")
        return replace(self, layers=_freeze_in(root, "layers", fqn, after).children)

    def bare_param_widths(self) -> dict[str, int]:
        """Each bare parameter's FQN -> the width of the activation it is added to."""
        return {p.fqn: p.width for p in self._params() if p.width is not None}

    def _params(self) -> Iterator[ParamInfo]:
        return (p for p in _layout(self).params if p.alias_of is None)


def _leaf_fqns(container, prefix: str) -> list[str]:
    """FQNs of the leaves (modules and bare parameters) under `container`."""
    out = []
    for name, child in zip(_names(container, container.children), container.children):
        node = child.child if isinstance(child, UnusedSpec) else child
        fqn = _join(prefix, name)
        out += _leaf_fqns(node, fqn) if isinstance(node, CONTAINER_TYPES) else [fqn]
    return out


def _freeze_in(container, prefix: str, fqn: str, after: int | None):
    """`container` with the leaf at `fqn` given ``freeze=after``."""
    children = []
    for name, child in zip(_names(container, container.children), container.children):
        unused = isinstance(child, UnusedSpec)
        node = child.child if unused else child
        here = _join(prefix, name)
        if here == fqn:
            node = replace(node, freeze=after)
        elif isinstance(node, CONTAINER_TYPES) and fqn.startswith(here + "."):
            node = _freeze_in(node, here, fqn, after)
        children.append(replace(child, child=node) if unused else node)
    return replace(container, children=tuple(children))


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
