"""Targets hold other values (`osdconform.properties._other_values`).

The properties load into targets whose param-group values were moved off the
scenario's, so a load that does not restore one shows.  That only works if
every restorable value really moves, keeps its type, and stays valid for a
step (torch-dsd steps the target before it loads), and if a correct load
(the reference's) then restores the source's values exactly.
"""

from __future__ import annotations

import warnings

import torch
from hypothesis import HealthCheck, given, settings

from osdconform import reference as ref
from osdconform import strategies as ost
from osdconform.compare import assert_osd_equal
from osdconform.properties._other_values import (
    KEPT,
    STRUCTURAL_ZERO,
    STRUCTURAL_ZERO_SPARSE,
    ZERO_TO,
    give_other_values,
    other_value,
    sparse_params,
)
from osdconform.scenario import (
    EmbeddingSpec,
    GroupSpec,
    LinearSpec,
    OptimizerSpec,
    PlanSpec,
    Scenario,
    TreeSpec,
    build_workload,
    train,
)

CPU = torch.device("cpu")


def _moves(key, value) -> bool:
    """Whether `other_value` is meant to change `value` (see the module docstring)."""
    if key in STRUCTURAL_ZERO and not value:
        return False
    if isinstance(value, bool):
        return key == "maximize"
    if value is None:
        return key == "line_search_fn"
    if isinstance(value, tuple):
        return any(_moves(key, v) for v in value)
    return True


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_each_kind_of_value_moves_and_keeps_its_type():
    assert other_value("lr", 0.01) == 0.005
    assert other_value("weight_decay", 0.0) == ZERO_TO
    assert other_value("max_iter", 3) == 4 and type(other_value("max_iter", 3)) is int
    assert other_value("maximize", False) is True
    assert other_value("momentum", 0) == 0 and other_value("momentum", 0.9) == 0.45  # a zero decides the state
    assert other_value("amsgrad", True) is True  # a flag that changes the state's keys stays
    assert other_value("betas", (0.9, 0.999)) == (0.45, 0.4995)
    assert other_value("eps", (None, 1e-3)) == (None, 5e-4)  # Adafactor
    assert other_value("line_search_fn", "strong_wolfe") is None
    assert other_value("line_search_fn", None) == "strong_wolfe"
    assert other_value("adjust_lr_fn", "original") == "match_rms_adamw"  # Muon
    assert other_value("name", "head") == "head-target"
    lr = torch.tensor(0.01, dtype=torch.float32)
    moved = other_value("lr", lr)
    assert moved is not lr and moved.dtype == lr.dtype and moved.device == lr.device
    assert moved.item() == torch.tensor(0.005).item() and lr.item() == torch.tensor(0.01).item()
    assert other_value("lr", torch.tensor(0.0)).item() == ZERO_TO


@given(ost.full_scenarios(world_sizes=(1,), plan_kinds=["none"]))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_restorable_value_moves_stays_valid_and_a_correct_load_restores_it(scenario):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = build_workload(scenario, rank=0, device=CPU)
        train(src, scenario.steps)
        osd = ref.full_osd(src.module, src.optimizers)

        dst = build_workload(scenario, rank=0, device=CPU, init_seed=scenario.seed + 1)
        before = [dict(g) for opt in dst.optimizers for g in opt.param_groups]
        give_other_values(dst.optimizers, dst.module)
        sparse = sparse_params(dst.module)
        after = [g for opt in dst.optimizers for g in opt.param_groups]
        for i, (old, new) in enumerate(zip(before, after)):
            assert old.keys() == new.keys()
            for key, value in old.items():
                if key in KEPT:
                    assert new[key] is value, f"group {i} {key} was moved"
                elif key in STRUCTURAL_ZERO_SPARSE and not value and any(id(p) in sparse for p in new["params"]):
                    assert new[key] == value, f"group {i} {key}: weight decay given to sparse gradients"
                elif _moves(key, value):
                    assert not _same(value, new[key]), f"group {i} {key} kept {value!r}"
                    if key != "line_search_fn":  # LBFGS's takes None or "strong_wolfe"
                        assert type(new[key]) is type(value), f"group {i} {key}: {value!r} -> {new[key]!r}"

        # Valid for a step (the one torch-dsd takes before it loads, and more).
        probe = build_workload(scenario, rank=0, device=CPU, init_seed=scenario.seed + 2)
        give_other_values(probe.optimizers, probe.module)
        train(probe, 1)

        # A correct load restores every value the target was given.
        ref.load_osd(dst.module, dst.optimizers, osd)
        assert_osd_equal(osd, ref.full_osd(dst.module, dst.optimizers))


def test_a_group_with_sparse_gradients_keeps_its_weight_decay_off_and_still_trains():
    # The errors suite's wrong-optimizer target (SGD over a sparse Embedding)
    # failed to train once weight decay moved off zero: "add(sparse, dense)".
    scenario = Scenario(
        seed=0, world_size=1,
        model=TreeSpec(width=1, layers=(LinearSpec(out=1), EmbeddingSpec(num=1, sparse=True))),
        optimizers=(OptimizerSpec("sgd", (GroupSpec(("layers.1.weight",), (("momentum", 0.9),)),)),),
        plan=PlanSpec("none"), steps=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dst = build_workload(scenario, rank=0, device=CPU)
        give_other_values(dst.optimizers, dst.module)
        group = dst.optimizers[0].param_groups[0]
        assert group["weight_decay"] == 0 and group["momentum"] == 0.45
        train(dst, 1)
