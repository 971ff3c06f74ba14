"""torch-dsd: set rejects get's own output when a parameter never got a gradient.

A model with an unused branch (a submodule whose output forward does not use):
its parameters require grad but never receive one, so after a training step
the optimizer holds no state for them, and ``get_optimizer_state_dict`` rightly
returns none.  Loading that very OSD into a fresh model and optimizer with
``set_optimizer_state_dict`` (default options, strict) raises
"Missing optimizer state for parameter 'unused.weight' in checkpoint": a round
trip of torch's own output fails, though ``optimizer.load_state_dict`` of the
same state works.  Standalone: torch only, one process, gloo.  Exits 1 while
the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


class WithUnusedBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(3, 2)
        self.unused = nn.Linear(3, 2)  # registered, never called

    def forward(self, x):
        return self.used(x)


def make():
    torch.manual_seed(0)
    model = WithUnusedBranch()
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29518")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = make()
        model(torch.randn(4, 3)).square().mean().backward()
        optim.step()
        osd = get_optimizer_state_dict(model, optim)
        print("state saved for:", sorted(osd["state"]))
        model2, optim2 = make()
        try:
            set_optimizer_state_dict(model2, optim2, osd)
        except RuntimeError as exc:
            print(f"set_optimizer_state_dict rejected get_optimizer_state_dict's output: {exc}")
            return 1
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
