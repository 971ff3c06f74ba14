"""torch-dsd: a checkpoint taken right after add_param_group does not load.

A job optimizes part of its model, then starts optimizing another part by
adding its parameters to the optimizer as a new group (``add_param_group``:
progressive unfreezing, a new head) and checkpoints before the next step.  The
new parameters have no optimizer state yet (torch.optim makes it at their
first step), so ``get_optimizer_state_dict`` rightly returns none for them;
``set_optimizer_state_dict`` (default options, strict) then refuses that very
OSD, into the live optimizer or a fresh one built with both groups: "Missing
optimizer state for parameter 'head.weight' in checkpoint".  A restart from
the checkpoint fails though ``optimizer.load_state_dict`` of the same state
works.  Standalone: torch only, one process, gloo.  Exits 1 while the bug
exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29519")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = Model()
        optim = torch.optim.Adam(model.body.parameters(), lr=0.1)  # the head is not optimized yet
        model(torch.randn(4, 3)).square().mean().backward()
        optim.step()
        optim.add_param_group({"params": list(model.head.parameters()), "lr": 0.01})
        osd = get_optimizer_state_dict(model, optim)
        print("state saved for:", sorted(osd["state"]))
        optim.load_state_dict(optim.state_dict())  # torch.optim takes its own state back
        try:
            set_optimizer_state_dict(model, optim, osd)
        except RuntimeError as exc:
            print(f"set_optimizer_state_dict rejected get_optimizer_state_dict's output: {exc}")
            return 1
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
