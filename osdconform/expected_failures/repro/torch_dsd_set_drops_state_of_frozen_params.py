"""torch-dsd: set drops the saved state of parameters that do not require grad.

Train a Linear with SGD (momentum) for one step, then freeze its weight (as a
fine-tuning schedule does) and checkpoint with ``get_optimizer_state_dict``:
the OSD rightly holds the weight's momentum buffer.  Resuming into a fresh
model whose weight is frozen the same way, ``set_optimizer_state_dict`` keeps
only the state of parameters with ``requires_grad=True``
(``_split_optim_state_dict``), so the weight's momentum is silently lost: the
optimizer's state after the load lacks it, and unfreezing later restarts its
momentum from zero.  ``optimizer.load_state_dict`` of the same state keeps it.
(The suite meets it with Adagrad, whose constructor gives state to every
parameter, frozen ones too.)  Standalone: torch only, one process, gloo.
Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


def make():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29584")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = make()
        model(torch.randn(4, 3)).square().mean().backward()
        optim.step()
        model.weight.requires_grad_(False)
        osd = get_optimizer_state_dict(model, optim)
        print("state saved for:", sorted(osd["state"]))
        model2, optim2 = make()
        model2.weight.requires_grad_(False)
        set_optimizer_state_dict(model2, optim2, osd)
        loaded = sorted(get_optimizer_state_dict(model2, optim2)["state"])
        print("state after set_optimizer_state_dict:", loaded)
        if "weight" not in loaded:
            print("the frozen weight's momentum buffer was dropped by the load")
            return 1
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
