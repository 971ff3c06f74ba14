"""What was found on older torch (issue 15): the named conditions of its entries and the release floors
that depend on the model, on the scenarios that found them.

Each was written from a failing example of the full space on torch 2.6.0 and
the torch-only script cut from it (``expected_failures/repro`` for entries,
``expected_failures/floors`` for floors, whose probes
tests/nocover/test_expected_failures.py runs on the installed torch); these
tests pin each rule to those examples and to the near misses that pass there
(an XPASS on 2.6 showed two: a nested plan entry alone is not enough, nor a
convolution in an unused branch).
"""

from __future__ import annotations

from osdconform.expected_failures._conditions import (
    checkpoint_lacks_state_of_params_trainable_at_build,
    fsdp1_adagrad_param_empty_on_a_rank,
)
from osdconform.scenario import (
    Conv1dSpec,
    EmbeddingSpec,
    GroupSpec,
    LinearSpec,
    ModuleDictSpec,
    OptimizerSpec,
    PlanSpec,
    Scenario,
    SequentialSpec,
    TreeSpec,
    UnusedSpec,
)
from osdconform.scenario._refusals import accepts
from osdconform.scenario._releases import release_model_refusal, tp_plan_reaches_another_module


def _tp_reaches(layers, fqn):
    return tp_plan_reaches_another_module(PlanSpec("tp", tp=((fqn, "colwise"),)), TreeSpec(width=1, layers=layers))


def test_a_nested_tp_entry_whose_last_atom_names_a_conv_at_an_upper_level_reaches_it():
    # torch < 2.9: the plan for 'layers.1.0' is also applied to 'layers.0', the Conv1d.
    assert _tp_reaches((Conv1dSpec(out=1), SequentialSpec((LinearSpec(out=1),))), "layers.1.0")


def test_a_nested_tp_entry_whose_atoms_name_nothing_else_reaches_only_its_linear():
    # The XPASS on 2.6: 'layers.0.a' in a ModuleDict builds fine there.
    assert not _tp_reaches((ModuleDictSpec((LinearSpec(out=1),)),), "layers.0.a")


def test_a_top_level_tp_entry_reaches_only_its_linear():
    assert not _tp_reaches((LinearSpec(out=1), Conv1dSpec(out=1)), "layers.0")


def test_a_dtensor_convolution_is_refused_before_2_10_only_when_it_trains():
    conv = TreeSpec(width=1, layers=(Conv1dSpec(out=1),))
    dtensor = PlanSpec("dtensor")
    assert "needs torch >= 2.10 (installed 2.9.0)" in release_model_refusal(dtensor, conv, 1, release="2.9.0")
    assert release_model_refusal(dtensor, conv, 1, release="2.10.0") is None
    assert release_model_refusal(dtensor, conv, 0, release="2.9.0") is None  # no forward, nothing fails
    unused = TreeSpec(width=1, layers=(LinearSpec(out=1), UnusedSpec(Conv1dSpec(out=1))))
    assert release_model_refusal(dtensor, unused, 1, release="2.9.0") is None  # the XPASS on 2.6
    assert release_model_refusal(PlanSpec("none"), conv, 1, release="2.6.0") is None


def test_a_2d_dtensor_mesh_is_refused_before_2_8_and_a_nested_tp_plan_before_2_9():
    linear = TreeSpec(width=1, layers=(LinearSpec(out=1),))
    assert "needs torch >= 2.8" in release_model_refusal(PlanSpec("dtensor", mesh_2d=True), linear, 1, release="2.7.1")
    assert release_model_refusal(PlanSpec("dtensor", mesh_2d=True), linear, 1, release="2.8.0") is None
    nested = TreeSpec(width=1, layers=(Conv1dSpec(out=1), SequentialSpec((LinearSpec(out=1),))))
    plan = PlanSpec("tp", tp=(("layers.1.0", "colwise"),))
    assert "needs torch >= 2.9" in release_model_refusal(plan, nested, 0, release="2.8.0")
    assert release_model_refusal(plan, nested, 0, release="2.9.0") is None


def test_the_installed_torch_accepts_what_it_can_run():
    # On the torch CI runs (2.13), none of the model floors refuses anything.
    conv = TreeSpec(width=1, layers=(Conv1dSpec(out=1),))
    assert accepts(PlanSpec("dtensor"), 1, conv, 1) is None


def test_a_checkpoint_without_state_of_a_parameter_trainable_at_build():
    # Frozen at build beside an unused branch frozen after one step, momentum over both, two steps:
    # the get saves no state, the fresh optimizer's zero-gradient step gives 'layers.1.weight' some.
    model = TreeSpec(width=1, layers=(LinearSpec(out=1, freeze=0), UnusedSpec(LinearSpec(out=1, freeze=1))))
    momentum = OptimizerSpec("sgd", (GroupSpec(("layers.0.weight", "layers.1.weight"), (("momentum", 0.9),)),))
    scenario = Scenario(seed=0, world_size=1, model=model, optimizers=(momentum,), steps=2)
    assert checkpoint_lacks_state_of_params_trainable_at_build(scenario)
    # One step: 'layers.1.weight' still trains at the get, which gives it state, so the checkpoint has it.
    assert not checkpoint_lacks_state_of_params_trainable_at_build(
        Scenario(seed=0, world_size=1, model=model, optimizers=(momentum,), steps=1)
    )


def test_an_adagrad_parameter_with_an_empty_fsdp1_shard():
    # One element over three ranks (the example that found it); over one rank nothing is empty.
    model = TreeSpec(width=1, layers=(EmbeddingSpec(num=1),))
    adagrad = OptimizerSpec("adagrad", (GroupSpec(("layers.0.weight",)),))
    plan = PlanSpec("fsdp1", shard=("layers", "layers.0"), sharding_strategy="SHARD_GRAD_OP")
    assert fsdp1_adagrad_param_empty_on_a_rank(
        Scenario(seed=0, world_size=3, model=model, optimizers=(adagrad,), plan=plan, steps=1)
    )
    assert not fsdp1_adagrad_param_empty_on_a_rank(
        Scenario(seed=0, world_size=1, model=model, optimizers=(adagrad,), plan=plan, steps=1)
    )
    wide = TreeSpec(width=3, layers=(EmbeddingSpec(num=2),))  # six elements, two a rank
    assert not fsdp1_adagrad_param_empty_on_a_rank(
        Scenario(seed=0, world_size=3, model=wide, optimizers=(adagrad,), plan=plan, steps=1)
    )


def test_a_dtensor_embedding_is_refused_before_2_11_only_when_it_trains():
    table = TreeSpec(width=1, layers=(EmbeddingSpec(num=3),))
    dtensor = PlanSpec("dtensor")
    assert "needs torch >= 2.11 (installed 2.10.0)" in release_model_refusal(dtensor, table, 1, release="2.10.0")
    assert release_model_refusal(dtensor, table, 1, release="2.11.0") is None
    assert release_model_refusal(dtensor, table, 0, release="2.10.0") is None
    unused = TreeSpec(width=1, layers=(LinearSpec(out=1), UnusedSpec(EmbeddingSpec(num=3))))
    assert release_model_refusal(dtensor, unused, 1, release="2.10.0") is None


def test_a_dtensor_batch_norm_is_refused_before_2_12_only_when_it_runs():
    from osdconform.scenario import BatchNormSpec

    norm = TreeSpec(width=1, layers=(LinearSpec(out=1), BatchNormSpec(affine=False, stats=False)))
    dtensor = PlanSpec("dtensor")
    assert "needs torch >= 2.12 (installed 2.11.0)" in release_model_refusal(dtensor, norm, 1, release="2.11.0")
    assert release_model_refusal(dtensor, norm, 1, release="2.12.0") is None
    unused = TreeSpec(width=1, layers=(LinearSpec(out=1), UnusedSpec(BatchNormSpec())))
    assert release_model_refusal(dtensor, unused, 1, release="2.11.0") is None


def test_an_empty_group_before_others_is_mapped_wrongly_only_when_the_checkpoint_has_state():
    # torch-dsd's split returns an OSD without state unchanged, so plain SGD loses nothing there
    # (an XPASS on 2.6 and 2.13 showed it); AdamW's state makes the split run and lose the group.
    from osdconform.expected_failures._conditions import dsd_split_maps_an_empty_group_wrongly

    model = TreeSpec(width=1, layers=(EmbeddingSpec(num=1),))

    def scenario(name, hparams=()):
        groups = (GroupSpec((), (("momentum", 0.5),) if name == "sgd" else ()), GroupSpec(("layers.0.weight",), hparams))
        return Scenario(seed=0, world_size=1, model=model, optimizers=(OptimizerSpec(name, groups),), steps=1)

    assert dsd_split_maps_an_empty_group_wrongly(scenario("adamw"))
    assert not dsd_split_maps_an_empty_group_wrongly(scenario("sgd", (("dampening", 0.1),)))
