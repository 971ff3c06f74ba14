"""The torch modules a model spec builds (`build_model`).

Why its own module: this is the only part of the model dimension that
touches ``torch.nn``; the specs stay plain data.  Module classes are
module-level so they pickle by reference; containers subclass torch's own,
so FQNs and ``isinstance`` are those of torch's containers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ._layout import _names, _out_width
from ._nodes import (
    CONTAINER_TYPES,
    BatchNormSpec,
    Conv1dSpec,
    Conv2dSpec,
    EmbeddingSpec,
    LayerNormSpec,
    LinearSpec,
    ModuleDictSpec,
    ModuleListSpec,
    ParamSpec,
    SequentialSpec,
    TiedLinearSpec,
    UnusedSpec,
)

if TYPE_CHECKING:
    from ._mlp import AnyModelSpec
    from ._tree import TreeSpec


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


class _Container:
    """Forward shared by the container modules: run the children in order.

    ``_steps`` holds, per child, its attribute name, how to apply it and its
    dtype (the hidden batch is cast to each child's dtype); unused children
    have no step.  In a model of one dtype the dtype is None and nothing is
    cast: the batch has the model's dtype already, and a plan may make the
    layers compute in another (FSDP's mixed precision casts the parameters
    and the model's inputs to bfloat16; a cast back would undo it).  The
    subclasses below are the torch containers with this forward, so FQNs and
    ``isinstance`` stay those of torch's containers.
    """

    def forward(self, h: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        for name, how, dtype in self._steps:
            if dtype is not None:
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
    """The root: ``layers`` (a `ModuleList`) applied to ``(features, indices)``.

    A pipeline stage (`_apply._pp`) is this module cut to its own layers: it
    is called with the two tensors as two arguments, as a schedule hands
    them on, and every stage but the last hands both on (``hands_on``).
    """

    hands_on = False

    def __init__(self, spec: TreeSpec) -> None:
        super().__init__()
        self.layers = _build_container(ModuleListSpec(spec.layers), spec.width, spec.dtype)
        #: The top-level layers' names in ``layers``, in order (a pipeline cuts along them).
        self.top_level_names = tuple(_names(ModuleListSpec(spec.layers), spec.layers))
        if not _overrides_dtype(spec.layers, spec.dtype):
            for module in self.modules():
                if isinstance(module, _Container):
                    module._steps = [(name, how, None) for name, how, _ in module._steps]

    def forward(self, inputs, indices=None):
        features, indices = inputs if indices is None else (inputs, indices)
        hidden = self.layers(features, indices)
        return (hidden, indices) if self.hands_on else hidden


def _overrides_dtype(nodes, dtype: str) -> bool:
    """Whether any of `nodes` (or below) has a dtype of its own other than `dtype`."""
    for node in nodes:
        inner = node.child if isinstance(node, UnusedSpec) else node
        if getattr(inner, "dtype", None) not in (None, dtype):
            return True
        if _overrides_dtype(getattr(inner, "children", ()), dtype):
            return True
    return False


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


def build_model(spec: AnyModelSpec, device: torch.device) -> nn.Module:
    """The module of `spec` on `device`, initialised from torch's global RNG.

    Built on the CPU and then moved, so the initial values do not depend on
    the device's RNG.  Parameters frozen at build have ``requires_grad=False``;
    with the spec's ``grad_dtype`` every parameter takes its gradients in it.
    """
    tree = spec.tree()
    module = TreeModel(tree)
    for fqn, k in tree.frozen_after().items():
        if k == 0:
            module.get_parameter(fqn).requires_grad_(False)
    module = module.to(device)
    if getattr(tree, "grad_dtype", None) is not None:
        # After the move: a conversion may make new parameter tensors.
        for param in module.parameters():
            param.grad_dtype = _torch_dtype(tree.grad_dtype)
    return module
