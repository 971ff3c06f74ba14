"""Model trees: the spec says exactly what the built module holds, and every dimension is drawn.

A spec answers questions (FQNs, shapes, units, dtypes, frozen, tied, unused)
without building anything; plans, optimizers and the reference rely on those
answers.  So for drawn trees the answers are checked against the real module
and a real forward/backward; and the strategies are checked to reach every
feature and to shrink to a small tree.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from helpers.drawn import tags_drawn
from helpers.shrinking import minimal
from osdconform import strategies as ost
from osdconform.scenario import (
    BatchNormSpec,
    Conv2dSpec,
    EmbeddingSpec,
    LinearSpec,
    MLPSpec,
    ModuleDictSpec,
    ParamSpec,
    SequentialSpec,
    TiedLinearSpec,
    TreeSpec,
    UnusedSpec,
    build_model,
)
from osdconform.scenario._models import (
    MODEL_TAGS,
    WORLD_TAGS,
    apply_freezes,
    loss,
    model_inputs,
    select_rows,
)
from osdconform.strategies._models import MAX_PARAMS, MAX_UNITS

CPU = torch.device("cpu")


def _build_and_backward(spec, rows: int = 4):
    torch.manual_seed(0)
    module = build_model(spec, CPU)
    out = loss(module(model_inputs(spec, rows, torch.Generator().manual_seed(0), CPU)))
    if out.requires_grad:
        out.backward()
    return module


@given(ost.models(sparse=True))
@settings(max_examples=60, deadline=None, database=None)
def test_spec_answers_match_the_built_module(spec):
    module = _build_and_backward(spec)
    params = dict(module.named_parameters())
    assert tuple(params) == spec.param_fqns()  # registration order, tied once
    assert {k: tuple(p.shape) for k, p in params.items()} == spec.param_shapes()
    assert {k: str(p.dtype).removeprefix("torch.") for k, p in params.items()} == spec.param_dtypes()
    assert {str(p.dtype).removeprefix("torch.") for p in params.values()} == spec.dtypes()
    assert tuple(n for n, _ in module.named_buffers()) == spec.buffer_fqns()
    every_name = dict(module.named_parameters(remove_duplicate=False))
    for alias, canonical in spec.tied_fqns().items():
        assert every_name[alias] is every_name[canonical]
    assert set(every_name) == set(params) | set(spec.tied_fqns())
    for fqn in spec.layer_fqns():
        assert isinstance(module.get_submodule(fqn), nn.Module)
    for fqn in spec.linear_fqns():
        assert type(module.get_submodule(fqn)) is nn.Linear
    for fqn in spec.sparse_param_fqns():
        assert module.get_submodule(fqn.rpartition(".")[0]).sparse
    frozen_at_build = {f for f, k in spec.frozen_after().items() if k == 0}
    unused = set(spec.unused_param_fqns())
    for fqn, p in params.items():
        assert p.requires_grad == (fqn not in frozen_at_build), fqn
        # Exactly the used, trainable parameters get a gradient.
        assert (p.grad is not None) == (fqn not in unused and fqn not in frozen_at_build), fqn
    assert len(params) <= MAX_PARAMS
    assert len(spec.layer_fqns()) <= MAX_UNITS


@given(ost.models(sparse=True))
@settings(max_examples=40, deadline=None, database=None)
def test_specs_pickle_and_rebuild_from_repr(spec):
    assert pickle.loads(pickle.dumps(spec)) == spec
    namespace: dict = {}
    exec("from osdconform.scenario import *", namespace)
    assert eval(repr(spec), namespace) == spec
    described = spec.describe()
    for fqn in spec.layer_fqns()[1:]:
        assert f"{fqn}:" in described


def test_a_tree_with_everything_in_it():
    spec = TreeSpec(
        width=3,
        layers=(
            LinearSpec(out=2, bias=True),
            SequentialSpec(children=(ParamSpec(shape="0-d"), UnusedSpec(LinearSpec(out=5)))),
            ModuleDictSpec(
                children=(EmbeddingSpec(num=3), BatchNormSpec(), TiedLinearSpec(bias=True, freeze=1)),
                dtype="float64",
            ),
            ParamSpec(shape="1-element", freeze=0),
        ),
        dtype="bfloat16",
    )
    # A container's bare params come before its children's (named_parameters order).
    assert spec.param_fqns() == (
        "layers.p3",
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.p0",
        "layers.1.0.weight",
        "layers.2.a.weight",
        "layers.2.b.weight",
        "layers.2.b.bias",
        "layers.2.c.first.weight",
        "layers.2.c.first.bias",
    )
    assert spec.tied_fqns() == {"layers.2.c.second.weight": "layers.2.c.first.weight"}
    assert spec.layer_fqns() == ("layers", "layers.0", "layers.1", "layers.1.0", "layers.2", "layers.2.a", "layers.2.b", "layers.2.c")
    assert spec.linear_fqns() == ("layers.0",)  # not the unused one, not the tied pair
    assert spec.unused_param_fqns() == ("layers.1.0.weight",)
    assert spec.frozen_after() == {"layers.p3": 0, "layers.2.c.first.weight": 1, "layers.2.c.first.bias": 1}
    assert spec.param_shapes()["layers.1.p0"] == () and spec.param_shapes()["layers.p3"] == (1,)
    assert spec.dtypes() == {"bfloat16", "float64"}
    assert spec.buffer_fqns() == ("layers.2.b.running_mean", "layers.2.b.running_var", "layers.2.b.num_batches_tracked")
    assert {
        "module:linear", "module:embedding", "module:batchnorm", "bare param", "tied", "container:sequential",
        "container:moduledict", "unused branch", "0-d param", "1-element param", "frozen", "frozen at build",
        "frozen after steps", "buffers", "dtype:mixed", "dtype:bfloat16", "dtype:float64",
        "param without grad", "unused trainable param",
    } <= spec.features()
    assert spec.world_features(1) == frozenset()
    assert spec.world_features(2) == {"dim < world", "dim not divisible by world"}
    module = _build_and_backward(spec)
    assert module.layers[2]["c"].second.weight is module.layers[2]["c"].first.weight
    # Tied: one Parameter, one gradient from both uses.
    assert module.get_parameter("layers.2.c.first.weight").grad is not None


def test_freeze_after_steps_is_applied_by_absolute_step():
    spec = TreeSpec(width=2, layers=(LinearSpec(out=2, freeze=2), LinearSpec(out=1, freeze=0)))
    module = build_model(spec, CPU)
    assert [p.requires_grad for p in module.parameters()] == [True, False]
    apply_freezes(module, spec, 1)
    assert module.get_parameter("layers.0.weight").requires_grad
    apply_freezes(module, spec, 2)  # before step 2: two steps done
    assert not module.get_parameter("layers.0.weight").requires_grad


def test_the_mlp_shorthand_is_the_tree_of_its_linears():
    mlp = MLPSpec(dims=(2, 5, 1), bias=(True, False))
    assert mlp.tree() == TreeSpec(width=2, layers=(LinearSpec(out=5, bias=True), LinearSpec(out=1)))
    assert mlp.param_fqns() == ("layers.0.weight", "layers.0.bias", "layers.1.weight")
    assert mlp.param_shapes() == {"layers.0.weight": (5, 2), "layers.0.bias": (5,), "layers.1.weight": (1, 5)}
    assert mlp.layer_fqns() == mlp.linear_fqns() == ("layers.0", "layers.1")
    assert mlp.features() == {"dtype:float32", "module:linear", "used trainable param"}
    module = build_model(mlp, CPU)
    assert tuple(n for n, _ in module.named_parameters()) == mlp.param_fqns()


def test_inputs_are_features_and_indices_sliced_together():
    spec = TreeSpec(width=3, layers=(EmbeddingSpec(num=2),), dtype="float64")
    x, idx = model_inputs(spec, 6, torch.Generator().manual_seed(1), CPU)
    assert x.shape == (6, 3) and x.dtype == torch.float64 and idx.dtype == torch.int64
    xs, ids = select_rows((x, idx), 2, 4)
    assert torch.equal(xs, x[2:4]) and torch.equal(ids, idx[2:4])


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda: TreeSpec(width=0, layers=(LinearSpec(1),)), "width must be >= 1"),
        (lambda: TreeSpec(width=1, layers=()), "non-empty tuple of layers"),
        (lambda: TreeSpec(width=1, layers=(BatchNormSpec(affine=False),)), "at least one parameter"),
        (lambda: TreeSpec(width=1, layers=(LinearSpec(1, dtype="float16"),)), "unknown dtype"),
        (lambda: TreeSpec(width=1, layers=(Conv2dSpec(1, kernel=(2, 1)),)), "kernel sizes must be odd"),
        (lambda: TreeSpec(width=1, layers=("linear",)), "not a model node"),
        (lambda: ParamSpec(shape="2-d"), "unknown bare-parameter shape"),
    ],
)
def test_invalid_specs_say_why(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        bad()


# -- every dimension is drawn ---------------------------------------------------------


def test_every_model_feature_is_drawn_by_the_scenario_strategy():
    """What a ci run draws (scenarios() over worlds 1-4) reaches every model feature.

    Sparse embeddings are off in `scenarios()` (only SparseAdam takes their
    gradients), so they are checked on `models(sparse=True)`.
    """
    wanted = (MODEL_TAGS | WORLD_TAGS) - {"sparse embedding"}
    seen = tags_drawn(ost.full_scenarios(), lambda s: s.features, wanted, max_examples=400, derandomize=True)
    missing = sorted(wanted - seen)
    assert not missing, f"never drawn in 400 scenarios: {missing}"
    sparse = {"sparse embedding"}
    assert sparse <= tags_drawn(ost.models(sparse=True), lambda m: m.features(), sparse, max_examples=200, derandomize=True)


def test_fsdp2_scenarios_draw_no_mixed_dtypes_and_no_scalars():
    seen = tags_drawn(ost.full_scenarios(plan_kinds=["fsdp2"]), lambda s: s.features, None, max_examples=150, derandomize=True)
    assert "dtype:mixed" not in seen and "0-d param" not in seen
    assert "tied" in seen and "nested" in seen  # the rest of the space is still there


# -- shrinking -----------------------------------------------------------------------


def test_the_minimal_model_is_one_linear_1x1():
    assert minimal(ost.models(), lambda m: True) == TreeSpec(width=1, layers=(LinearSpec(out=1),))


@pytest.mark.parametrize(
    "tag, smallest",
    [
        ("tied", TiedLinearSpec()),
        ("0-d param", ParamSpec(shape="0-d")),
        ("unused branch", UnusedSpec(LinearSpec(out=1))),
        ("frozen after steps", LinearSpec(out=1, freeze=1)),
        ("container:moduledict", ModuleDictSpec(children=(LinearSpec(out=1),))),
        ("nested", SequentialSpec(children=(SequentialSpec(children=(LinearSpec(out=1),)),))),
    ],
)
def test_shrinks_to_a_small_tree_with_a_feature(tag, smallest):
    """The shrinker gets to width 1 and at most one node besides the smallest that has `tag`.

    (Hypothesis's shrinker is not guaranteed to delete every extra node; it
    does reach the smallest node with the feature, and tiny dims.)
    """
    m = minimal(ost.models(), lambda m: tag in m.features())
    assert m.width == 1, m
    assert smallest in m.layers and len(m.layers) <= 2, m
    assert all(s == (1,) * len(s) for s in m.param_shapes().values()), m


def test_mixed_dtypes_shrink_to_two_small_layers():
    m = minimal(ost.models(), lambda m: "dtype:mixed" in m.features())
    assert m.width == 1 and len(m.layers) == 2 and len(m.param_fqns()) == 2, m
