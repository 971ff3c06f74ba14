"""The adapters' index <-> FQN conversion (`osdconform.backends._native`).

Backends built on index-keyed ``state_dict()``s (``zero``) and on one optimizer
per call (``fsdp1``, ``zero``) convert at their boundary; a mistake there
would be blamed on torch.  One process, no process group.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from osdconform.backends._native import split_osd, to_canonical, to_native


def _trained():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    opt = torch.optim.Adam(
        [{"params": [model[1].weight, model[0].weight]}, {"params": [model[0].bias, model[1].bias], "lr": 0.5}]
    )
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_canonical_and_back_is_the_native_dict_even_with_params_out_of_model_order():
    model, opt = _trained()
    native = opt.state_dict()
    canonical = to_canonical(native, model, opt.param_groups)
    assert canonical["param_groups"][0]["params"] == ["1.weight", "0.weight"]
    # Listed in another order than the live group: state must still land on the right parameter.
    canonical["param_groups"][0]["params"].reverse()
    fresh = torch.optim.Adam(
        [{"params": [model[1].weight, model[0].weight]}, {"params": [model[0].bias, model[1].bias], "lr": 0.5}]
    )
    fresh.load_state_dict(to_native(canonical, model, fresh.param_groups))
    for p in model.parameters():
        assert torch.equal(fresh.state[p]["exp_avg"], opt.state[p]["exp_avg"])


@pytest.mark.parametrize(
    "break_it, names",
    [
        (lambda c: c["state"].__setitem__("no.such", {}), "no.such"),
        (lambda c: c["param_groups"][1]["params"].remove("1.bias"), "1.bias"),
        (lambda c: c["param_groups"][0]["params"].append("0.bias"), "0.bias"),
    ],
    ids=["unknown state", "missing from a group", "in the wrong group"],
)
def test_to_native_names_the_parameter_it_cannot_place(break_it, names):
    model, opt = _trained()
    canonical = to_canonical(opt.state_dict(), model, opt.param_groups)
    break_it(canonical)
    with pytest.raises((KeyError, ValueError), match=names.replace(".", r"\.")):
        to_native(canonical, model, opt.param_groups)


def test_split_osd_deals_groups_out_and_gives_unclaimed_state_to_the_first_part():
    osd = {
        "state": {"a": {"x": 1}, "b": {"x": 2}, "c": {"x": 3}, "stray": {"x": 4}},
        "param_groups": [{"params": ["a"]}, {"params": ["b"]}, {"params": ["c"]}],
    }
    first, second = split_osd(osd, [2, 1])
    assert first == {"state": {"a": {"x": 1}, "b": {"x": 2}, "stray": {"x": 4}}, "param_groups": osd["param_groups"][:2]}
    assert second == {"state": {"c": {"x": 3}}, "param_groups": osd["param_groups"][2:]}

