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

`MLPSpec` (an MLP given by its widths) is kept as a shorthand; it builds the
tree of `Linear` layers with the same FQNs (``layers.<i>.weight``).
`AnyModelSpec` is either kind.

One module per job: `_nodes` (the node types and feature tags), `_layout`
(the one walk that finds parameters, units, buffers and tags), `_tree`
(`TreeSpec`: every question about a model), `_mlp` (`MLPSpec`,
`AnyModelSpec`), `_modules` (the torch modules, `build_model`) and `_data`
(freezes, inputs and loss for training).
"""

from ._data import apply_freezes, loss, model_inputs, select_rows
from ._layout import ParamInfo, UnitInfo
from ._mlp import AnyModelSpec, MLPSpec
from ._modules import ModuleDict, ModuleList, Sequential, TiedLinear, TreeModel, build_model
from ._nodes import (
    CONTAINER_TYPES,
    DTYPES,
    INDEX_RANGE,
    KIND_TAGS,
    LEAF_TYPES,
    MODEL_TAGS,
    PARAM_SHAPES,
    WORLD_TAGS,
    BatchNormSpec,
    Conv1dSpec,
    Conv2dSpec,
    EmbeddingSpec,
    LayerNormSpec,
    LinearSpec,
    ModuleDictSpec,
    ModuleListSpec,
    Node,
    ParamSpec,
    SequentialSpec,
    TiedLinearSpec,
    UnusedSpec,
)
from ._tree import TreeSpec

#: The MLP spec's former name (it never meant "any model": that is
#: `AnyModelSpec`); kept so existing imports, reproducer scripts written
#: before the rename and their pickles keep working.
ModelSpec = MLPSpec

__all__ = [
    "CONTAINER_TYPES",
    "DTYPES",
    "INDEX_RANGE",
    "KIND_TAGS",
    "LEAF_TYPES",
    "MODEL_TAGS",
    "PARAM_SHAPES",
    "WORLD_TAGS",
    "AnyModelSpec",
    "BatchNormSpec",
    "Conv1dSpec",
    "Conv2dSpec",
    "EmbeddingSpec",
    "LayerNormSpec",
    "LinearSpec",
    "MLPSpec",
    "ModelSpec",
    "ModuleDict",
    "ModuleDictSpec",
    "ModuleList",
    "ModuleListSpec",
    "Node",
    "ParamInfo",
    "ParamSpec",
    "Sequential",
    "SequentialSpec",
    "TiedLinear",
    "TiedLinearSpec",
    "TreeModel",
    "TreeSpec",
    "UnitInfo",
    "UnusedSpec",
    "apply_freezes",
    "build_model",
    "loss",
    "model_inputs",
    "select_rows",
]
