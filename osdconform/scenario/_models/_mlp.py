"""`MLPSpec`: the MLP shorthand for a tree of `Linear` layers, and `AnyModelSpec`.

Why its own module: most scenarios (and the core strategies) need only an
MLP given by its widths; `MLPSpec` keeps that spec (and its repr) short
while every question is answered by the equivalent `TreeSpec`, so both kinds
of spec are interchangeable wherever `AnyModelSpec` is taken.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Union

from ._nodes import LinearSpec
from ._tree import TreeSpec


@dataclass(frozen=True)
class MLPSpec:
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
        return self._tree

    @functools.cached_property
    def _tree(self) -> TreeSpec:
        # Built once per spec: expected-failure predicates ask an MLP about its
        # parameters and features for every entry, form and step (a million
        # times in a search of the core space), and a new tree is validated anew.
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


#: Any model spec: a `TreeSpec`, or the `MLPSpec` shorthand for one.
AnyModelSpec = Union[TreeSpec, MLPSpec]
