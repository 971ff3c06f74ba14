"""torch-dsd: a run resumed from a checkpoint taken before the first step diverges.

``get_optimizer_state_dict`` on an optimizer that has not stepped yet runs one
step with zero gradients (``_init_optim_state``) and returns that state, so
the checkpoint says Adam has taken one step.  A run restored from it is one
step ahead of the run it continues: its first real step uses the bias
correction of step 2, and the parameters differ from the uninterrupted run's.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def step(model, optim):
    torch.manual_seed(1)
    model(torch.randn(4, 3)).square().mean().backward()
    optim.step()
    optim.zero_grad()


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29520")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        straight, straight_optim = make()
        step(straight, straight_optim)
        model, optim = make()
        checkpoint = get_optimizer_state_dict(model, optim, options=full)  # before any step
        resumed, resumed_optim = make()
        set_optimizer_state_dict(resumed, resumed_optim, checkpoint, options=full)
        step(resumed, resumed_optim)
        same = torch.equal(straight.weight, resumed.weight) and torch.equal(straight.bias, resumed.bias)
        steps = [float(s["step"]) for s in resumed_optim.state.values()]
        print(f"resumed run: parameters {'equal' if same else 'differ'}, Adam step {steps} (expected 1.0)")
        return 0 if same else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
