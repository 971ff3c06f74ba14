"""The reference gives back the state dtypes it loads, unlike ``Optimizer.load_state_dict``.

NAdam keeps ``mu_product`` and ASGD ``eta``/``mu`` in float32 next to bf16 or
fp64 parameters; torch's load casts them to the parameter's dtype
(pytorch/pytorch#75224).  One process, no plan: `full_osd` and `load_osd` need
no process group for an unsharded model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from osdconform.reference import full_osd, load_osd


def _trained(make, dtype):
    torch.manual_seed(0)
    model = nn.Linear(3, 2).to(dtype)
    optimizer = make(model.parameters())
    for _ in range(2):
        model(torch.randn(4, 3, dtype=dtype)).sum().backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize(
    "make, scalars",
    [(torch.optim.NAdam, ["mu_product"]), (torch.optim.ASGD, ["eta", "mu"])],
    ids=["nadam", "asgd"],
)
def test_load_keeps_the_dtype_of_scalar_state_that_torch_would_cast(make, scalars, dtype):
    model, optimizer = _trained(make, dtype)
    saved = full_osd(model, optimizer)
    assert all(saved["state"]["weight"][k].dtype == torch.float32 for k in scalars)  # the premise

    fresh_model = nn.Linear(3, 2).to(dtype)
    fresh = make(fresh_model.parameters())
    load_osd(fresh_model, fresh, saved)
    state = fresh.state[fresh_model.weight]
    for k in scalars:
        assert state[k].dtype == torch.float32, k
        assert torch.equal(state[k], saved["state"]["weight"][k]), k
    # The moments stay in the parameter's dtype, as torch keeps them.
    assert state["exp_avg" if make is torch.optim.NAdam else "ax"].dtype == dtype

    # ... whereas torch's own load casts them (the reason for `restore_dtypes`).
    plain = make(fresh_model.parameters())
    plain.load_state_dict(optimizer.state_dict())
    assert plain.state[fresh_model.weight][scalars[0]].dtype == dtype
