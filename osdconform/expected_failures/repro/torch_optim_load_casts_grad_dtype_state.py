"""torch.optim: a load casts state that follows a parameter's ``grad_dtype`` to the parameter's dtype.

A parameter may accumulate gradients in a dtype of its own (``Tensor.grad_dtype``:
a float32 weight with bfloat16 gradients), and optimizers that build their state
from the gradient then keep it in that dtype: SGD's ``momentum_buffer`` is a
clone of the first gradient (bfloat16), as are Rprop's ``step_size``,
Adafactor's ``row_var``/``col_var``, Muon's momentum and LBFGS's history.
``Optimizer.load_state_dict`` casts every floating state value but ``step`` to
the *parameter's* dtype (``_process_value_according_to_param_policy``; cf.
pytorch/pytorch#75224), so the loaded momentum is float32: the state differs
from the one saved, and the resumed run accumulates in float32 where the
uninterrupted one rounds to bfloat16, so the two runs part.  Standalone: torch
only, one process.  Exits 1 while the bug exists.
"""

import copy
import sys

import torch


def make():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(4))
    param.grad_dtype = torch.bfloat16  # float32 weight, bfloat16 gradients
    return param, torch.optim.SGD([param], lr=0.1, momentum=0.9)


def step(param, optim, i):
    optim.zero_grad()
    data = torch.randn(4, generator=torch.Generator().manual_seed(i)).bfloat16()
    (param.to(torch.bfloat16) * data).square().sum().backward()
    optim.step()


def main() -> int:
    param, optim = make()
    for i in range(2):
        step(param, optim, i)
    saved = copy.deepcopy(optim.state_dict())
    resumed, optim2 = make()
    with torch.no_grad():
        resumed.copy_(param)
    optim2.load_state_dict(saved)
    live = optim.state[param]["momentum_buffer"].dtype
    loaded = optim2.state[resumed]["momentum_buffer"].dtype
    print(f"momentum_buffer: {live} in the live optimizer, {loaded} after load_state_dict")
    step(param, optim, 2)
    step(resumed, optim2, 2)
    same = torch.equal(param, resumed)
    print(f"one more step: resumed equals uninterrupted: {same} (max difference {(param - resumed).abs().max().item():.3g})")
    return 0 if live == loaded and same else 1


if __name__ == "__main__":
    sys.exit(main())
