"""torch-dsd: a set gives the loaded optimizer state that the checkpoint does not hold.

A parameter of an unused branch never gets a gradient, so after training its
optimizer (here: SGD with momentum for it, plain SGD, which keeps no state,
for the used parameters) holds no state at all, and
``get_optimizer_state_dict`` returns none (its zero-gradient initialisation
runs only when no parameter has a gradient).  ``set_optimizer_state_dict``
into a fresh model and optimizer (no gradients yet) runs that initialisation
first: a zero-gradient step that creates a ``momentum_buffer`` for the unused
parameter, which the load leaves in place.  The loaded optimizer's OSD then
holds state the saved one did not (full and sharded forms alike).
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict, set_optimizer_state_dict


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.used = torch.nn.Linear(2, 2)
        self.unused = torch.nn.Linear(2, 2)  # never called

    def forward(self, x):
        return self.used(x)


def make(steps: int):
    torch.manual_seed(0)
    model = Model()
    optim = torch.optim.SGD(
        [
            {"params": model.used.parameters()},  # plain SGD: no state
            {"params": model.unused.parameters(), "momentum": 0.9},
        ],
        lr=0.1,
    )
    for _ in range(steps):
        optim.zero_grad()
        model(torch.randn(4, 2)).sum().backward()
        optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29548")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        failed = False
        for options in (StateDictOptions(full_state_dict=True), StateDictOptions()):
            model, optim = make(steps=2)
            saved = get_optimizer_state_dict(model, optim, options=options)
            fresh, fresh_optim = make(steps=0)
            set_optimizer_state_dict(fresh, fresh_optim, saved, options=options)
            loaded = get_optimizer_state_dict(fresh, fresh_optim, options=options)
            extra = sorted(set(loaded["state"]) - set(saved["state"]))
            print(f"full={options.full_state_dict}: saved state for {sorted(saved['state'])}, loaded extra {extra}")
            failed |= bool(extra)
        return 1 if failed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
