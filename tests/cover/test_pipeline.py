"""Pipeline parallelism (plan ``pp``, issue 14 item 2): stages, their optimizers, their training.

The plain-data side (`scenario._pipeline`): stages cut the top-level layers
into contiguous runs and so partition the parameters; a stage's optimizers
and canonical OSD are the scenario's cut to its parameters, empty groups
dropped.  The refusals say what cannot run as a pipeline.  Then real
worlds (gloo, one module-scoped `WorldPool`): each rank trains its stage
through a GPipe schedule, holds its stage's parameters' state and only
those, and that state is the golden twin's cut to the stage (the twin
takes one backward per microbatch, as the schedule does: a twin over the
whole batch would be wrong where BatchNorm normalises over the rows it
sees, `test_a_whole_batch_twin_would_be_wrong_under_a_pipeline`).
"""

from __future__ import annotations

import pytest

from helpers import golden_tasks as gt
from osdconform.backends import StateOptions
from osdconform.compare import assert_osd_equal, first_difference
from osdconform.expected_failures import parse_xfails
from osdconform.expected_failures._conditions import stateless_optimizer_without_state
from osdconform.golden import golden_full_osd, golden_stage_osd, golden_tolerance
from osdconform.harness import WorldPool
from osdconform.properties import representable
from osdconform.scenario import (
    BatchNormSpec,
    EmbeddingSpec,
    GroupSpec,
    LayerNormSpec,
    LinearSpec,
    OptimizerSpec,
    ParamSpec,
    PlanSpec,
    Scenario,
    TreeSpec,
    plan_accepts,
)
from osdconform.scenario._pipeline import (
    pipeline_refusal,
    restrict_optimizer,
    restrict_osd,
    stage_bounds,
    stage_param_fqns,
    stage_views,
    top_level_names,
)

# Five top-level layers: ``layers.0`` .. ``layers.2``, the bare ``layers.p3``, ``layers.3``.
MODEL = TreeSpec(4, (LinearSpec(out=3), EmbeddingSpec(num=5), LayerNormSpec(), ParamSpec(), LinearSpec(out=2)))
FQNS = MODEL.param_fqns()


def _adam(model=MODEL) -> OptimizerSpec:
    fqns = model.param_fqns()
    return OptimizerSpec("adam", (GroupSpec(fqns[:3]), GroupSpec(fqns[3:], (("lr", 0.01),))))


def _scenario(world_size: int, model=MODEL, optimizers=None, steps: int = 2) -> Scenario:
    return Scenario(
        seed=3, world_size=world_size, model=model, optimizers=optimizers or (_adam(model),),
        plan=PlanSpec("pp"), steps=steps,
    )


@pytest.mark.parametrize("n", range(1, 8))
def test_stages_cut_the_layers_into_contiguous_runs_of_even_length(n):
    for stages in range(1, n + 1):
        bounds = [stage_bounds(n, stages, s) for s in range(stages)]
        assert [b[0] for b in bounds] == [0] + [b[1] for b in bounds[:-1]]
        assert bounds[-1][1] == n
        sizes = [stop - start for start, stop in bounds]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("stages", [2, 3, 4, 5])
def test_stages_partition_the_parameters(stages):
    owned = [stage_param_fqns(MODEL, stages, s) for s in range(stages)]
    assert sum(len(o) for o in owned) == len(FQNS)
    assert frozenset().union(*owned) == frozenset(FQNS)
    assert top_level_names(MODEL) == ["0", "1", "2", "p3", "3"]
    slot = top_level_names(MODEL).index("p3")  # a bare parameter goes with its own top-level slot
    holder = next(s for s in range(stages) if stage_bounds(5, stages, s)[0] <= slot < stage_bounds(5, stages, s)[1])
    assert "layers.p3" in owned[holder]


def test_a_stage_keeps_the_groups_it_has_parameters_in_in_order():
    spec = _adam()
    assert FQNS == ("layers.p3", "layers.0.weight", "layers.1.weight", "layers.2.weight", "layers.2.bias", "layers.3.weight")
    first, second = (stage_param_fqns(MODEL, 2, s) for s in range(2))  # layers 0-2; p3 and 3
    cut = restrict_optimizer(spec, first)
    assert [g.params for g in cut.groups] == [("layers.0.weight", "layers.1.weight"), ("layers.2.weight", "layers.2.bias")]
    assert cut.groups[1].hparams == (("lr", 0.01),)
    assert [g.params for g in restrict_optimizer(spec, second).groups] == [("layers.p3",), ("layers.3.weight",)]
    one = TreeSpec(2, (LinearSpec(out=2), LinearSpec(out=2)))
    two_groups = OptimizerSpec("sgd", (GroupSpec(("layers.0.weight",)), GroupSpec(("layers.1.weight",))))
    assert [g.params for g in restrict_optimizer(two_groups, stage_param_fqns(one, 2, 1)).groups] == [("layers.1.weight",)]
    osd = {
        "state": {f: {"step": i} for i, f in enumerate(FQNS)},
        "param_groups": [{"lr": 0.1, "params": list(g.params)} for g in spec.groups],
    }
    assert restrict_osd(osd, first) == {
        "state": {f: {"step": FQNS.index(f)} for f in FQNS if f in first},
        "param_groups": [{"lr": 0.1, "params": list(g.params)} for g in cut.groups],
    }


def test_what_cannot_run_as_a_pipeline_is_refused_with_a_reason():
    assert "two stages" in plan_accepts(PlanSpec("pp"), 1)
    assert plan_accepts(PlanSpec("pp"), 2, MODEL) is None
    assert "top-level layers" in plan_accepts(PlanSpec("pp"), 4, TreeSpec(2, (LinearSpec(out=2),) * 3))
    assert "compiled whole" in plan_accepts(PlanSpec("pp", wrap=(("", "compile"),)), 2, MODEL)
    no_param = TreeSpec(2, (LayerNormSpec(affine=False), LinearSpec(out=2)))
    assert "own no parameter" in plan_accepts(PlanSpec("pp"), 2, no_param)
    lbfgs = OptimizerSpec("lbfgs", (GroupSpec(FQNS),))
    assert "closure" in lbfgs.unsupported_plan("pp")
    first = ("layers.0.weight", "layers.1.weight")  # both on stage 0 of 2
    two = (OptimizerSpec("sgd", (GroupSpec(first),)), OptimizerSpec("adam", (GroupSpec(tuple(f for f in FQNS if f not in first)),)))
    assert "stage 1 holds no parameter of optimizer 0" in pipeline_refusal(MODEL, 2, two)
    assert pipeline_refusal(MODEL, 2, (_adam(),)) is None


def test_rank0_forms_cannot_carry_a_pipelines_state():
    pp, none = _scenario(2), _scenario(2).replace(plan=PlanSpec())
    for options in (StateOptions(full=True, cpu_offload=True), StateOptions(full=True, broadcast_from_rank0=True)):
        assert not representable(options)(pp)
        assert representable(options)(none)
    assert representable(StateOptions(full=True))(pp)
    assert representable(StateOptions(storage=True))(pp)


def test_an_expected_failure_holds_for_a_pipeline_where_it_holds_for_one_stage():
    """Each rank's backend sees only its stage's optimizers, so predicates are judged
    per stage: stage 1 of this SGD keeps no state (its group has no momentum), which
    the whole optimizer, stateful in stage 0's group, does not show."""
    first = ("layers.0.weight", "layers.1.weight", "layers.2.weight", "layers.2.bias")  # stage 0 of 2
    sgd = OptimizerSpec("sgd", (GroupSpec(first, (("momentum", 0.9),)), GroupSpec(("layers.p3", "layers.3.weight"))))
    entry, = parse_xfails(
        "property: roundtrip\nwhen: stateless_optimizer_without_state(s)\nmatch: x\nreason: r\nreproducer: r.py\n", "t.txt"
    )
    pp = _scenario(2, optimizers=(sgd,))
    views = stage_views(pp)
    assert [v.optimizers[0].groups for v in views] == [sgd.groups[:1], sgd.groups[1:]]
    assert [stateless_optimizer_without_state(v) for v in views] == [False, True]
    assert entry.applies("roundtrip", pp, StateOptions())
    assert not entry.applies("roundtrip", pp.replace(plan=PlanSpec()), StateOptions())


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=120) as pool:
        yield pool


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_each_stage_holds_its_part_of_the_twins_state(pool, world_size):
    scenario = _scenario(world_size)
    ranks = pool.run(world_size, gt.trained_full_osd, scenario)
    golden = golden_full_osd(scenario)
    tolerance = golden_tolerance(scenario.model, scenario.plan)
    merged = {}
    for rank, osd in enumerate(ranks):
        mine = stage_param_fqns(MODEL, world_size, rank)
        assert set(osd["state"]) == mine  # Adam after 2 steps: state for every parameter it owns
        assert_osd_equal(restrict_osd(golden, mine), osd, context=f"stage {rank}", tolerance=tolerance)
        merged.update(osd["state"])
    assert_osd_equal(golden["state"], merged, context="the stages' state, merged", tolerance=tolerance)


def test_a_stage_whose_parameters_are_all_frozen_passes_the_gradient_on(pool):
    """Stage 0's only parameter freezes after one step; stage 1 still trains (its
    input still requires grad: `_build._pipeline_step`)."""
    model = TreeSpec(3, (LinearSpec(out=3, bias=False, freeze=1), LinearSpec(out=3)))
    sgd = OptimizerSpec("sgd", (GroupSpec(model.param_fqns(), (("momentum", 0.9),)),))
    scenario = _scenario(2, model, (sgd,), steps=3)
    ranks = pool.run(2, gt.trained_full_osd, scenario)
    for rank, osd in enumerate(ranks):
        assert_osd_equal(golden_stage_osd(scenario, "cpu", rank), osd, context=f"stage {rank}",
                         tolerance=golden_tolerance(model, scenario.plan))


def test_a_whole_batch_twin_would_be_wrong_under_a_pipeline(pool):
    """BatchNorm normalises over the rows it sees: over each microbatch in a
    pipeline, so only a twin that takes one backward per microbatch matches
    (SGD's momentum buffer after one step is the gradient)."""
    model = TreeSpec(3, (LinearSpec(out=3), BatchNormSpec(), LinearSpec(out=3)))
    sgd = OptimizerSpec("sgd", (GroupSpec(model.param_fqns(), (("momentum", 0.9),)),))
    scenario = _scenario(2, model, (sgd,), steps=1)
    ranks = pool.run(2, gt.trained_full_osd, scenario)
    whole_batch = golden_full_osd(scenario.replace(plan=PlanSpec()))
    tolerance = golden_tolerance(model, scenario.plan)
    for rank, osd in enumerate(ranks):
        assert_osd_equal(golden_stage_osd(scenario, "cpu", rank), osd, context=f"stage {rank}", tolerance=tolerance)
    assert first_difference(restrict_osd(whole_batch, stage_param_fqns(model, 2, 0)), ranks[0], tolerance=tolerance)


def test_only_a_pipeline_shows_a_checkpointer_that_takes_rank_0s_state_for_everyones(pool):
    """`CheckpointsRankZerosStageOnly` (a fault of the corpus: rank 0's full OSD
    handed to every rank) passes fidelity wherever every rank holds the same
    state, and fails it on a pipeline's second stage."""
    from osdconform.harness import WorldFailure
    from osdconform.properties import fidelity

    fault = "faults:CheckpointsRankZerosStageOnly"
    full = StateOptions(full=True)
    pool.run(2, fidelity, _scenario(2).replace(plan=PlanSpec("ddp")), fault, full)
    with pytest.raises(WorldFailure, match=r"fidelity \(reference gather vs backend full get\): OSD mismatch"):
        pool.run(2, fidelity, _scenario(2), fault, full)
