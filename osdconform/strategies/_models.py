"""Strategies for the model dimension (see `osdconform.scenario._models`).

`models()` draws random module trees: 1..`MAX_TOP` top-level nodes, each a
leaf (Linear, Conv1d/2d, Embedding, LayerNorm, BatchNorm, a bare Parameter, a
tied pair of Linears) or a container (Sequential / ModuleList / ModuleDict) of
up to `MAX_CHILDREN` nodes, nested up to `MAX_DEPTH` containers deep.  Any
node may be an unused branch, frozen at build or after some steps, or have its
own dtype (mixed precision).

Every choice shrinks toward its simplest value: the first alternative of each
``one_of`` / ``sampled_from`` is the simple one (a ``Linear``; no bias; no
override; used; not frozen; float32), and widths shrink to 1.  So the smallest
model is one ``Linear(1, 1)`` without bias.

Widths are drawn small (1..`MAX_DIM`) so that dims smaller than and not
divisible by the world size come up all the time (empty local shards).
"""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from ..scenario import MLPSpec
from ..scenario._models import (
    DTYPES,
    PARAM_SHAPES,
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
    TreeSpec,
    UnusedSpec,
)

MAX_DIM = 6
#: Top-level nodes of a tree.
MAX_TOP = 3
#: Children of a container below the top level.
MAX_CHILDREN = 2
#: Containers nested in containers (1: containers hold only leaves).
MAX_DEPTH = 2
#: Per-node choices, simplest first, repeated to set how often the others come
#: up (every node draws them, so a tree of several nodes has one of them often).
#: Freeze: ``None`` (trainable), frozen at build, after 1 or 2 steps.
FREEZES = (None,) * 14 + (0, 1, 2)
#: Unused branch: no (mostly), yes.
UNUSED = (False,) * 11 + (True,)
#: A node's own dtype when mixing: none (mostly), or one of `DTYPES`.
DTYPE_OVERRIDES = (None,) * 6 + DTYPES
#: Kept for the MLP strategy.
MAX_LAYERS = 3

#: Parameters of one leaf at most (a weight and a bias).
_LEAF_PARAMS = 2


def _max_params(depth: int) -> int:
    """Most canonical parameters a node at `depth` remaining nesting levels can hold."""
    if depth == 0:
        return _LEAF_PARAMS
    return max(_LEAF_PARAMS, MAX_CHILDREN * _max_params(depth - 1))


def _max_units(depth: int) -> int:
    """Most wrappable submodules a node with `depth` remaining nesting levels can hold."""
    if depth == 0:
        return 1
    return 1 + MAX_CHILDREN * _max_units(depth - 1)


#: Upper bound on the number of (canonical) parameters of a drawn model, so
#: that other dimensions can draw per-parameter choices before the model.
MAX_PARAMS = MAX_TOP * _max_params(MAX_DEPTH)
#: Upper bound on `layer_fqns()` of a drawn model (``layers`` itself included).
MAX_UNITS = 1 + MAX_TOP * _max_units(MAX_DEPTH)


def dims(max_dim: int = MAX_DIM) -> st.SearchStrategy[int]:
    return st.integers(1, max_dim)


@st.composite
def mlp_models(draw, max_layers: int = MAX_LAYERS, max_dim: int = MAX_DIM) -> MLPSpec:
    """An MLP; each layer is drawn as one (width, bias) piece so it shrinks away whole."""
    d_in = draw(dims(max_dim))
    layers = draw(st.lists(st.tuples(dims(max_dim), st.booleans()), min_size=1, max_size=max_layers))
    return MLPSpec(dims=(d_in, *(width for width, _ in layers)), bias=tuple(b for _, b in layers))


@functools.lru_cache(maxsize=None)  # built once: validating strategies is slow
def _overrides(mixed: bool) -> st.SearchStrategy[dict]:
    """A node's own dtype (only when mixing) and freeze step; both shrink to none.

    The dtype is drawn even when not mixing (and dropped), as is an
    embedding's sparse flag: so a scenario strategy may decide `mixed` and
    `sparse` from an earlier draw (the plan) and the shrinker can move that
    draw without changing what the model's draws mean.
    """
    dtype = st.sampled_from(DTYPE_OVERRIDES).map(lambda d: d if mixed else None)
    return st.fixed_dictionaries({"dtype": dtype, "freeze": st.sampled_from(FREEZES)})


@functools.lru_cache(maxsize=None)  # built once: validating strategies is slow
def _leaf(mixed: bool, sparse: bool) -> st.SearchStrategy:
    o = _overrides(mixed)
    odd = st.sampled_from((1, 3))
    return st.one_of(
        st.builds(lambda out, bias, kw: LinearSpec(out, bias, **kw), dims(), st.booleans(), o),
        st.builds(lambda out, k, bias, kw: Conv1dSpec(out, k, bias, **kw), dims(), odd, st.booleans(), o),
        st.builds(
            lambda out, k, bias, kw: Conv2dSpec(out, k, bias, **kw), dims(), st.tuples(odd, odd), st.booleans(), o
        ),
        st.builds(
            lambda num, sp, kw: EmbeddingSpec(num, sp, **kw),
            dims(),
            st.booleans().map(lambda b: b and sparse),
            o,
        ),
        st.builds(lambda a, b, kw: LayerNormSpec(a, b, **kw), st.booleans(), st.booleans(), o),
        st.builds(lambda a, s, kw: BatchNormSpec(a, s, **kw), st.booleans(), st.booleans(), o),
        st.builds(lambda shape, kw: ParamSpec(shape, **kw), st.sampled_from(PARAM_SHAPES), o),
        st.builds(lambda b, kw: TiedLinearSpec(b, **kw), st.booleans(), o),
    )


@functools.lru_cache(maxsize=None)  # built once: validating strategies is slow
def _node(depth: int, mixed: bool, sparse: bool) -> st.SearchStrategy:
    """A leaf, or (with nesting levels left) a container; maybe an unused branch."""
    leaf = _leaf(mixed, sparse)
    if depth > 0:
        children = st.lists(_node(depth - 1, mixed, sparse), min_size=1, max_size=MAX_CHILDREN).map(tuple)
        o = _overrides(mixed)
        container = st.one_of(
            st.builds(lambda c, kw: SequentialSpec(c, **kw), children, o),
            st.builds(lambda c, kw: ModuleListSpec(c, **kw), children, o),
            st.builds(lambda c, kw: ModuleDictSpec(c, **kw), children, o),
        )
        node = st.one_of(leaf, container)
    else:
        node = leaf
    unused = st.sampled_from(UNUSED)
    return st.tuples(node, unused).map(lambda p: UnusedSpec(p[0]) if p[1] else p[0])


@st.composite
def tree_models(
    draw,
    *,
    max_top: int = MAX_TOP,
    max_depth: int = MAX_DEPTH,
    mixed_dtypes: bool = True,
    sparse: bool = False,
) -> TreeSpec:
    """A random module tree (see the module docstring).

    ``mixed_dtypes=False`` gives every node the tree's dtype (plans that
    flatten or all-gather a unit's parameters together need one dtype per
    unit); ``sparse=True`` lets embeddings have sparse gradients (only
    ``SparseAdam`` takes them, so only draw them when the optimizers can).
    """
    width = draw(dims())
    dtype = draw(st.sampled_from(DTYPES))
    layers = draw(_layer_lists(max_top, max_depth, mixed_dtypes, sparse))
    return TreeSpec(width=width, layers=layers, dtype=dtype)


@functools.lru_cache(maxsize=None)
def _layer_lists(max_top: int, max_depth: int, mixed: bool, sparse: bool) -> st.SearchStrategy[tuple]:
    return (
        st.lists(_node(max_depth, mixed, sparse), min_size=1, max_size=max_top)
        .map(tuple)
        .filter(_has_params)  # rare: only norms without affine
    )


def _has_params(layers: tuple) -> bool:
    try:
        TreeSpec(width=1, layers=layers)
    except ValueError:  # the only way a drawn tree is invalid: no parameter
        return False
    return True


def models(*, mixed_dtypes: bool = True, sparse: bool = False) -> st.SearchStrategy[TreeSpec]:
    """Any model of the space (drawn last by `scenarios`, see there)."""
    return tree_models(mixed_dtypes=mixed_dtypes, sparse=sparse)
