"""The reference's DTensor arithmetic, checked against torch on real process groups.

The reference (`shard_like`, `unshard`, `full_osd`, `load_osd`) must not use
torch's ``distribute_tensor`` / ``full_tensor``, because those are what the
backends under test rely on.  Here, in the tests, we are free to use them as
an independent cross-check: if the reference and torch disagree about how a
placement cuts a tensor, every sharded verdict the suite gives is suspect.

Worlds of 1-4 ranks (gloo) come from one module-scoped `WorldPool`; the first
example of each size pays for spawning it, later ones take milliseconds.
Rank-side code is in ``tests/helpers/rank_tasks.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from torch.distributed.tensor import Replicate, Shard

from helpers import rank_tasks as rt
from osdconform.harness import WorldPool
from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, PlanSpec, Scenario
from osdconform.strategies import full_scenarios as scenarios


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=60) as pool:
        yield pool


# -- shard_like / unshard ---------------------------------------------------------

MESH_SHAPES = [(1,), (2,), (3,), (4,), (2, 2)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.int64]


@st.composite
def layouts(draw):
    """(shape, dtype, seed, mesh shape, placements).

    Dims of 0..7 over up to 4 ranks give uneven and empty local shards; on the
    2x2 mesh both mesh dims may shard the same tensor dim (also as ``-1``).
    """
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=ndim, max_size=ndim)))
    mesh_shape = draw(st.sampled_from(MESH_SHAPES))
    placement = st.one_of(st.just(Replicate()), st.builds(Shard, st.integers(-ndim, ndim - 1)))
    placements = tuple(draw(placement) for _ in mesh_shape)
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    return shape, dtype, seed, mesh_shape, placements


@settings(max_examples=25, deadline=None)
@given(layout=layouts())
# Dims smaller than the world: trailing ranks hold empty shards.
@example(layout=((1,), torch.float32, 0, (4,), (Shard(0),)))
@example(layout=((2, 3), torch.int64, 1, (3,), (Shard(0),)))
@example(layout=((3, 0, 2), torch.float64, 2, (3,), (Shard(1),)))
# The same dim sharded by both mesh dims: 3 -> (2, 1) -> (1, 1), (1, 0).
@example(layout=((3, 2), torch.bfloat16, 3, (2, 2), (Shard(0), Shard(0))))
@example(layout=((2, 5), torch.float32, 4, (2, 2), (Shard(1), Shard(-1))))
@example(layout=((4, 3), torch.float32, 5, (2, 2), (Replicate(), Shard(0))))
@example(layout=((5, 3), torch.float64, 6, (2, 2), (Shard(1), Replicate())))
# 2-byte dtypes once failed to unshard on gloo (no int16 collectives).
@example(layout=((5,), torch.float16, 7, (2,), (Shard(0),)))
def test_shard_like_and_unshard_agree_with_torch(pool, layout):
    shape, dtype, seed, mesh_shape, placements = layout
    world = math.prod(mesh_shape)
    local_shapes = pool.run(world, rt.shard_unshard, shape, dtype, seed, mesh_shape, placements)
    # Every element is held by exactly one rank per replica: nothing lost, nothing doubled.
    replicas = math.prod(n for n, p in zip(mesh_shape, placements) if isinstance(p, Replicate))
    assert sum(math.prod(s) for s in local_shapes) == math.prod(shape) * replicas, local_shapes
    if math.prod(shape) and any(math.prod(s) == 0 for s in local_shapes):
        event("some rank holds an empty shard")


def test_empty_shards_come_up(pool):
    """The explicit examples above really do put empty shards on some ranks."""
    shapes = pool.run(4, rt.shard_unshard, (1,), torch.float32, 0, (4,), (Shard(0),))
    assert shapes == [(1,), (0,), (0,), (0,)]
    shapes = pool.run(4, rt.shard_unshard, (3, 2), torch.bfloat16, 3, (2, 2), (Shard(0), Shard(0)))
    assert shapes == [(1, 2), (1, 2), (1, 2), (0, 2)]


def test_dtensor_mismatch_messages(pool):
    """`compare` on DTensors: placements first, then each rank's own shard.

    Pinned as they read today; note the index is into the *local* shard (global
    index 4 here), which the message does not say beyond "(local shard)".
    """
    by_rank = pool.run(2, rt.dtensor_mismatch_messages)
    placements = "v: placements differ: expected (Shard(dim=0),), actual (Replicate(),)"
    vs_plain = "v: type differs: expected DTensor(shape=(6,), dtype=torch.float32), actual Tensor(shape=(6,), dtype=torch.float32)"
    assert by_rank[0] == {"local value": None, "placements": placements, "vs plain tensor": vs_plain}
    assert by_rank[1] == {
        "local value": "v: values differ at index (1,): expected 4.0, actual -1.0 (1 of 3 elements differ) (local shard)",
        "placements": placements,
        "vs plain tensor": vs_plain,
    }


# -- load(gather(x)) == x on FSDP2 -------------------------------------------------

_UNEVEN = Scenario(
    seed=11,
    world_size=3,
    model=MLPSpec(dims=(2, 5, 1), bias=(True, True)),
    optimizers=(
        OptimizerSpec(
            "adam",
            (
                GroupSpec(("layers.0.weight", "layers.1.weight"), (("lr", 0.01),)),
                GroupSpec(("layers.0.bias", "layers.1.bias"), (("weight_decay", 0.1), ("betas", (0.5, 0.9)))),
            ),
        ),
    ),
    plan=PlanSpec("fsdp2", shard=("layers.0",)),
    steps=2,
)


@settings(max_examples=10, deadline=None)
@given(scenario=scenarios(plan_kinds=("fsdp2",), min_steps=1))
@example(scenario=_UNEVEN)
@example(scenario=_UNEVEN.replace(model=MLPSpec(dims=(2, 5, 1), bias=(True, True), dtype="bfloat16")))
@example(scenario=_UNEVEN.replace(world_size=4, optimizers=(OptimizerSpec("sgd", (GroupSpec(_UNEVEN.model.param_fqns(), (("momentum", 0.9),)),)),)))
def test_load_of_gather_is_identity_on_fsdp2(pool, scenario):
    results = pool.run(scenario.world_size, rt.load_gather_roundtrip, scenario)
    model = scenario.model
    trained = {
        f for f in model.param_fqns()
        if f not in model.unused_param_fqns() and model.frozen_after().get(f) != 0
    }
    # After a step every parameter that got a gradient, in a group that keeps
    # state (plain SGD keeps none), has state on every rank, whether or not its
    # local shard is empty; unused and frozen-at-build parameters have none,
    # except under Adagrad, which creates every parameter's state when built.
    with_state = sum(
        1 for o in scenario.optimizers for g in o.groups if o.group_keeps_state(g)
        for f in g.params if f in trained or o.name == "adagrad"
    )
    for rank, r in enumerate(results):
        assert r["params"] == len(model.param_fqns()), (rank, r)
        assert r["state_entries"] == with_state, (rank, r)
        assert (r["dtensor_values"] > 0) == (with_state > 0), (rank, r)  # sharded paths exercised
    if any(r["empty_local_shards"] for r in results):
        event("some rank holds an empty shard of a state tensor")


def test_uneven_scenario_has_empty_local_shards(pool):
    """`_UNEVEN` is what it says: layers.1 (1 x 5, and bias of 1) over 3 ranks."""
    results = pool.run(3, rt.load_gather_roundtrip, _UNEVEN)
    assert [r["empty_local_shards"] for r in results] == [0, 4, 4]  # exp_avg, exp_avg_sq x 2 params
