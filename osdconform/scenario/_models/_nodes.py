"""The nodes of a model tree: one frozen dataclass per layer or container kind.

Why its own module: these types are the vocabulary every other part of the
model dimension (the walk in `_layout`, `TreeSpec`, the torch modules in
`_modules`) and the strategies speak; they hold no behaviour beyond checking
their own fields and printing themselves as Python that rebuilds them, so
a failing scenario reads ``LinearSpec(out=1)``.  The feature tags a model can
carry (`KIND_TAGS`, `MODEL_TAGS`, `WORLD_TAGS`) live here beside the kinds
they name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

#: Dtype names a model may use (a tree mixing several is "mixed").
DTYPES = ("float32", "float64", "bfloat16")
#: Shapes a bare parameter may take: ``()``, ``(1,)`` or ``(width,)``.
PARAM_SHAPES = ("vector", "1-element", "0-d")
#: Integer inputs are drawn in ``[0, INDEX_RANGE)`` and reduced modulo each
#: embedding's size.
INDEX_RANGE = 64


# -- the nodes ------------------------------------------------------------------


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
