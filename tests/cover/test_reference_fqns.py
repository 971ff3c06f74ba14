"""The reference keys a wrapped model's state by the user's FQNs, as torch's APIs do.

People train models wrapped by activation checkpointing (``checkpoint_wrapper``:
``_checkpoint_wrapped_module``) and ``torch.compile`` (``_orig_mod``), one inside
the other (pytorch/pytorch#124546, torchtitan#2622): the canonical OSD must name a
parameter as the unwrapped model does, whatever the wrapping.  Checked in one
process against the unwrapped model's names and against the keys of torch's
``get_optimizer_state_dict`` (the cross-check the reference itself may not use),
and loaded back through the wrapped model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    apply_activation_checkpointing,
    checkpoint_wrapper,
)

from osdconform import reference as ref
from osdconform.compare import assert_osd_equal
from osdconform.reference._fqn import user_fqn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 2)])
        self.scale = nn.Parameter(torch.ones(2))

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x * self.scale


def _wrapped(how: str) -> tuple[nn.Module, nn.Module]:
    """(the model as the user trains it, the same model unwrapped)."""
    torch.manual_seed(0)
    net = Net()
    model = net
    if "checkpoint" in how:
        apply_activation_checkpointing(net, checkpoint_wrapper_fn=checkpoint_wrapper,
                                       check_fn=lambda m: isinstance(m, nn.Linear))
    if "compile" in how:
        model = torch.compile(net, backend="eager")  # no compiler needed
    return model, net


def _trained(model: nn.Module) -> torch.optim.Optimizer:
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    return opt


USER_FQNS = ["scale", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]


@pytest.mark.parametrize("how", ["checkpoint", "compile", "checkpoint+compile"])
def test_a_wrapped_model_is_keyed_by_the_users_fqns_as_torch_keys_it(how):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    model, net = _wrapped(how)
    names = [n for n, _ in model.named_parameters()]
    assert names != USER_FQNS  # the wrapping really renamed them
    assert [user_fqn(n) for n in names] == USER_FQNS
    opt = _trained(model)
    osd = ref.full_osd(model, opt)
    assert sorted(osd["state"]) == sorted(USER_FQNS)
    assert osd["param_groups"][0]["params"] == USER_FQNS
    theirs = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True))
    assert sorted(theirs["state"]) == sorted(USER_FQNS)
    assert_osd_equal(theirs, osd, context=f"torch's get vs the reference gather ({how})")
    # The unwrapped model's optimizer over the same parameters is keyed the same.
    assert ref.full_osd(net, opt)["state"].keys() == osd["state"].keys()
    # Loaded back through another wrapped copy, the state is the same.
    other, _ = _wrapped(how)
    other_opt = torch.optim.Adam(other.parameters(), lr=0.5)
    ref.load_osd(other, other_opt, osd)
    assert_osd_equal(osd, ref.full_osd(other, other_opt), context=f"reference load then gather ({how})")


def test_a_module_of_the_users_own_is_not_mistaken_for_a_wrapper():
    assert user_fqn("blocks.orig_mod.weight") == "blocks.orig_mod.weight"
    assert user_fqn("a_orig_mod.b") == "a_orig_mod.b"
    assert user_fqn("_orig_mod.layers.0._fsdp_wrapped_module._checkpoint_wrapped_module.weight") == "layers.0.weight"


@pytest.mark.parametrize("how", ["checkpoint", "compile", "checkpoint+compile"])
def test_the_builder_finds_a_wrapped_models_parameters_by_the_users_fqns(how):
    """`trainable_params` (what the scenario's optimizers are built over) names them the same."""
    from osdconform.scenario._apply import trainable_params

    model, net = _wrapped(how)
    params = trainable_params(model)
    assert list(params) == USER_FQNS
    assert [id(p) for p in params.values()] == [id(p) for p in net.parameters()]
