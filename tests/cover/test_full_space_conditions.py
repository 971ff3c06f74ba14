"""The named conditions of the entries found once every suite drew the full space (issue 18).

Each was written from a failing example of ``pytest suites --osd-space=full``
on torch 2.13.0 (the scenario is the one Hypothesis shrank to) and the
torch-only reproducer cut from it; these tests pin each rule to that example
and to the near misses that pass (the XPASSes that showed a core-space
predicate too wide in the full space among them).
"""

from __future__ import annotations

from osdconform import properties
from osdconform.expected_failures._conditions_full_space import (
    GETTING_STEPS,
    LOADING_STEPS,
    dsd_set_fails_after_an_optimizer_loaded,
    dsd_strict_check_names_another_param,
    dtensor_zero_d_param_with_state,
    fsdp1_param_empty_on_a_rank,
    init_step_builds_a_wrong_momentum,
    init_step_counts_a_step,
    init_step_gives_state_to_unused_params,
    missing_fqn_leaves_no_state,
)
from osdconform.properties import Fault
from osdconform.scenario import (
    EmbeddingSpec,
    GroupSpec,
    LinearSpec,
    OptimizerSpec,
    ParamSpec,
    PlanSpec,
    Scenario,
    TreeSpec,
    UnusedSpec,
)

LINEAR = TreeSpec(width=1, layers=(LinearSpec(out=1),))


def _one(name, hparams=(), *, model=LINEAR, steps=0, plan="none", world=1, params=None):
    params = params or model.param_fqns()
    opt = OptimizerSpec(name, (GroupSpec(tuple(params), tuple(hparams)),))
    return Scenario(seed=0, world_size=world, model=model, optimizers=(opt,), plan=PlanSpec(plan), steps=steps)


def test_every_property_step_either_gets_or_loads_and_only_the_two_world_halves_do_one_only():
    steps = {
        name for name in properties.__all__
        if callable(getattr(properties, name)) and name not in {"Fault", "forms", "placed", "representable", "scenario_on"}
    }
    assert steps == LOADING_STEPS | GETTING_STEPS
    assert LOADING_STEPS - GETTING_STEPS == {"reshard_load", "cross_device_load"}
    assert GETTING_STEPS - LOADING_STEPS == {"fidelity", "reshard_save", "isolation_after_get", "side_effects",
                                             "cross_device_save"}


def test_a_checkpoint_before_the_first_step_counts_the_zero_gradient_step_of_optimizers_that_count():
    assert init_step_counts_a_step(_one("adadelta"))  # resume[sharded]: step 2 where 1
    assert init_step_counts_a_step(_one("adam"))
    assert not init_step_counts_a_step(_one("adadelta", steps=1))  # trained: get steps nothing
    assert not init_step_counts_a_step(_one("sgd", (("momentum", 0.9),)))  # no step count
    assert not init_step_counts_a_step(_one("adagrad"))  # state from its constructor: never stepped


def test_the_zero_gradient_momentum_differs_only_with_momentum_and_dampening_or_weight_decay():
    assert init_step_builds_a_wrong_momentum(_one("sgd", (("momentum", 0.9), ("weight_decay", 0.01))))
    assert init_step_builds_a_wrong_momentum(_one("sgd", (("momentum", 0.9), ("dampening", 0.5))))
    # The XPASS of the core-space predicate: weight decay without momentum keeps no buffer.
    assert not init_step_builds_a_wrong_momentum(_one("sgd", (("weight_decay", 0.01),)))
    assert not init_step_builds_a_wrong_momentum(_one("sgd", (("momentum", 0.9),)))  # a zero buffer is right


def test_the_zero_gradient_step_gives_state_to_a_parameter_of_an_unused_branch():
    unused = TreeSpec(width=1, layers=(UnusedSpec(LinearSpec(out=1)),))
    assert init_step_gives_state_to_unused_params(_one("adam", model=unused))  # schedulers[sharded]
    assert not init_step_gives_state_to_unused_params(_one("adam"))
    assert not init_step_gives_state_to_unused_params(_one("adam", model=unused, steps=1))


def test_an_adafactor_parameter_that_is_an_empty_view_on_a_rank_under_fsdp1():
    model = TreeSpec(width=1, layers=(LinearSpec(out=1, bias=True),))
    assert fsdp1_param_empty_on_a_rank(_one("adafactor", model=model, plan="fsdp1", world=2), "adafactor")
    assert not fsdp1_param_empty_on_a_rank(_one("adafactor", model=model, plan="fsdp1", world=1), "adafactor")
    assert not fsdp1_param_empty_on_a_rank(_one("adam", model=model, plan="fsdp1", world=2), "adafactor")
    wide = TreeSpec(width=4, layers=(LinearSpec(out=4),))  # 16 elements: a piece on each of 2 ranks
    assert not fsdp1_param_empty_on_a_rank(_one("adafactor", model=wide, plan="fsdp1", world=2), "adafactor")


def test_a_zero_d_dtensor_parameter_with_state():
    model = TreeSpec(width=1, layers=(LinearSpec(out=1), ParamSpec(shape="0-d")))
    found = _one("sgd", (("momentum", 0.9),), model=model, plan="dtensor", steps=1)  # types[full]
    assert dtensor_zero_d_param_with_state(found)
    assert not dtensor_zero_d_param_with_state(_one("sgd", (("momentum", 0.9),), model=model, steps=1))
    assert not dtensor_zero_d_param_with_state(_one("sgd", model=model, plan="dtensor", steps=1))  # no state


def test_the_strict_check_names_a_stateless_parameter_instead_of_the_broken_key():
    assert dsd_strict_check_names_another_param(_one("sgd", steps=1), Fault("shape"))  # errors[full]
    assert not dsd_strict_check_names_another_param(_one("adam", steps=1), Fault("shape"))
    assert not dsd_strict_check_names_another_param(_one("sgd", steps=1), Fault("missing_fqn"))


def _sparse_beside_sgd():
    model = TreeSpec(width=1, layers=(LinearSpec(out=1), EmbeddingSpec(num=1, sparse=True)))
    opts = (
        OptimizerSpec("sparseadam", (GroupSpec(("layers.1.weight",)),)),
        OptimizerSpec("sgd", (GroupSpec(("layers.0.weight",)),)),
    )
    return Scenario(seed=0, world_size=1, model=model, optimizers=opts, plan=PlanSpec("none"), steps=1)


def test_a_set_refused_at_a_later_optimizer_has_loaded_the_earlier_ones():
    found = _sparse_beside_sgd()  # errors[full], the shape fault
    assert dsd_set_fails_after_an_optimizer_loaded(found, Fault("shape"))
    assert not dsd_set_fails_after_an_optimizer_loaded(found, Fault("wrong_optimizer"))  # the XPASS: refused first
    assert not dsd_set_fails_after_an_optimizer_loaded(_one("sgd", steps=1), Fault("shape"))  # one optimizer


def test_a_missing_fqn_fault_that_leaves_no_state_is_loaded_silently():
    found = _sparse_beside_sgd()  # the sparse weight is the only one with state
    assert missing_fqn_leaves_no_state(found, Fault("missing_fqn", 0))
    assert not missing_fqn_leaves_no_state(found, Fault("missing_fqn", 1))  # the sparse weight keeps its state
    two = TreeSpec(width=1, layers=(LinearSpec(out=1, bias=True),))
    assert not missing_fqn_leaves_no_state(_one("adam", model=two, steps=1), Fault("missing_fqn", 0))


def test_fsdp1s_own_load_keeps_the_callers_tensors():
    from osdconform.expected_failures._conditions_fsdp1 import fsdp1_load_keeps_caller_tensors

    assert fsdp1_load_keeps_caller_tensors(_one("adadelta", plan="fsdp1", world=2, steps=1))  # isolation[full]
    assert fsdp1_load_keeps_caller_tensors(_one("adagrad", plan="fsdp1", world=2))  # state from its constructor
    assert fsdp1_load_keeps_caller_tensors(_one("sgd", (("momentum", 0.9),), plan="fsdp1", steps=1))  # world 1
    assert not fsdp1_load_keeps_caller_tensors(_one("sgd", plan="fsdp1", steps=1))  # the XPASS: no state at all
    assert not fsdp1_load_keeps_caller_tensors(_one("sgd", (("momentum", 0.9),), plan="fsdp1", world=2, steps=1))
    assert not fsdp1_load_keeps_caller_tensors(_one("adam", plan="fsdp1", world=2))  # not stepped: no state


def test_fsdp1s_own_get_of_a_unit_that_mixes_trained_state_keys():
    from osdconform.expected_failures._conditions_fsdp1 import fsdp1_unit_mixes_trained_state_keys

    model = TreeSpec(width=1, layers=(LinearSpec(out=1), LinearSpec(out=1)))
    groups = (GroupSpec(("layers.0.weight",), (("amsgrad", True),)), GroupSpec(("layers.1.weight",)))

    def adam(steps, world=2):
        return Scenario(
            seed=0, world_size=world, model=model, optimizers=(OptimizerSpec("adam", groups),),
            plan=PlanSpec("fsdp1"), steps=steps,
        )

    assert fsdp1_unit_mixes_trained_state_keys(adam(1))
    assert not fsdp1_unit_mixes_trained_state_keys(adam(0))  # no state yet: FSDP1's get creates none
    assert not fsdp1_unit_mixes_trained_state_keys(adam(1, world=1))  # nothing sharded


def test_a_get_over_fsdp1_steps_only_the_ranks_whose_pieces_hold_nothing_trained():
    # The reproducer's layout (repro/torch_dsd_fsdp1_get_inits_some_ranks.py): a Linear(5 -> 1) unit is
    # 5 + 3 alignment + 1 elements, in pieces of 3 over four ranks, so rank 3 holds only padding; the
    # unused branch's one element lies on rank 0.
    from osdconform.expected_failures._conditions_fsdp1 import (
        dsd_get_inits_some_ranks_over_fsdp1,
        fsdp1_params_on_ranks,
    )

    model = TreeSpec(width=5, layers=(LinearSpec(out=1, bias=True), UnusedSpec(LinearSpec(out=1))))

    def adam(world, shard=("layers.0", "layers.1"), name="adam", plan="fsdp1"):
        groups = (GroupSpec(model.param_fqns()),)
        return Scenario(seed=0, world_size=world, model=model, optimizers=(OptimizerSpec(name, groups),),
                        plan=PlanSpec(plan, shard=shard), steps=1)

    assert fsdp1_params_on_ranks(adam(4)) == [
        {"layers.0.weight", "layers.1.weight"}, {"layers.0.weight"}, {"layers.0.bias"}, set()
    ]
    assert dsd_get_inits_some_ranks_over_fsdp1(adam(4))
    assert not dsd_get_inits_some_ranks_over_fsdp1(adam(3))  # every rank holds a trained element: none steps
    assert not dsd_get_inits_some_ranks_over_fsdp1(adam(4, shard=()))  # the idle rank holds the unused one alone
    assert not dsd_get_inits_some_ranks_over_fsdp1(adam(4, name="adagrad"))  # state from its constructor
    assert fsdp1_params_on_ranks(adam(4, shard=(), plan="ddp")) == []
