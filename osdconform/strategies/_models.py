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


#: Whether the full space gives models a gradient dtype of their own
#: (`full_scenarios(grad_dtype=...)` overrides).
DRAW_GRAD_DTYPE = True
#: The gradient dtype the space gives a model's float32 / float64 parameters.
GRAD_DTYPE = "bfloat16"


def grad_dtype_of_seed(seed: int) -> bool:
    """Whether the full space makes a model accumulate bfloat16 gradients
    (`TreeSpec.grad_dtype`) in an example whose data seed is `seed`: one in
    two of those that can, never at seed 0.  A function of the seed, not a
    draw, for the reason `_plans.wrapping_of_seed` gives."""
    import random

    return seed != 0 and random.Random(f"osdconform-grad-dtype-{seed}").randrange(2) == 0


def with_grad_dtype_by_seed(model, optimizers, plan_kind: str, seed: int):
    """`model` with bfloat16 gradients where `grad_dtype_of_seed` says so and
    the example can train them: no plan (`scenario._refusals.accepts`), every
    optimizer able to step them (`OptimizerSpec.unsupported_grad_dtype`), a
    parameter that is not bfloat16 already, no sparse gradient, and torch
    really trains it (`_trains_with_grad_dtype`).  Else `model` as it is:
    never an example turned away."""
    import dataclasses

    if (
        not isinstance(model, TreeSpec)
        or plan_kind != "none"
        or not grad_dtype_of_seed(seed)
        or not (model.dtypes() - {GRAD_DTYPE})
        or model.sparse_param_fqns()
        or any(o.unsupported_grad_dtype() for o in optimizers)
    ):
        return model
    candidate = dataclasses.replace(model, grad_dtype=GRAD_DTYPE)
    return candidate if _trains_with_grad_dtype(candidate, tuple(optimizers), seed) else model


#: Training steps `_trains_with_grad_dtype` tries: more than any property trains in one go.
PROBE_STEPS = 6


@functools.lru_cache(maxsize=1024)
def _trains_with_grad_dtype(model, optimizers, seed: int) -> bool:
    """Whether torch trains `model` (bfloat16 gradients) with `optimizers`, tried
    in this process for `PROBE_STEPS` steps on the example's data.

    Tried rather than ruled: which optimizers step bfloat16 gradients on float32
    or float64 weights depends on their hyperparameters and the parameters'
    dtypes in ways no table holds (torch 2.13: RMSprop with ``centered``, and
    foreach kernels on float64 weights, fail in ``lerp``: "expected dtype float
    for `end` but got dtype c10::BFloat16"; torch's own account,
    pytorch/pytorch#146542, is that its optimizers want a gradient of the
    parameter's dtype).  A limit of torch's optimizers, not of checkpointing,
    so such an example keeps its gradients in the parameters' dtype.
    """
    import torch

    from ..scenario import Scenario, build_workload, train

    scenario = Scenario(seed=seed, world_size=1, model=model, optimizers=optimizers, steps=PROBE_STEPS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):  # the build seeds torch's RNG: leave the driver's as it was
            train(build_workload(scenario, rank=0, device=torch.device("cpu")), PROBE_STEPS)
        return True
    except RuntimeError:
        return False
    finally:
        torch.set_num_threads(threads)
