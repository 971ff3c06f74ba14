"""torch-dsd (torch < 2.7): the flat form of a model with tied parameters cannot be loaded back.

A model whose two submodules share one weight (``second.weight is
first.weight``) has one parameter under two FQNs; torch.optim holds it once.
``get_optimizer_state_dict(flatten_optimizer_state_dict=True)`` saves it under
its first FQN, and ``set_optimizer_state_dict`` with the same options then
looks for it under both FQNs: it raises ``KeyError: 'state.<second
FQN>.<state key>'`` (here ``momentum_buffer``) or, when the optimizer has no
state yet, ``ValueError: loaded state dict contains a parameter group that
doesn't match the size of optimizer's group``, so torch's own flat checkpoint
of a tied model does not load.
torch 2.7 loads the sharded form (the full flat form then fails for every
model, a defect of its own).

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
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


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(2, 2, bias=False)
        self.second = torch.nn.Linear(2, 2, bias=False)
        self.second.weight = self.first.weight

    def forward(self, x):
        return self.second(self.first(x))


def make():
    torch.manual_seed(0)
    model = Tied()
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 2)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        options = StateDictOptions(flatten_optimizer_state_dict=True)
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim, options=options)
        fresh, fresh_optim = make()
        try:
            set_optimizer_state_dict(fresh, fresh_optim, osd, options=options)
        except (ValueError, KeyError) as error:
            print(f"the flat OSD of a tied model did not load: {type(error).__name__}: {error}")
            return 1
        print("the flat OSD of a tied model loaded")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
