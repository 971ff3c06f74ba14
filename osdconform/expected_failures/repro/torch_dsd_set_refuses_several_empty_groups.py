"""torch-dsd: set_optimizer_state_dict refuses an OSD with more than one empty param group.

torch.optim accepts param groups without parameters, any number of them, and
``get_optimizer_state_dict`` saves them.  ``set_optimizer_state_dict`` then
raises ``ValueError: ... zero parameters`` (``_split_optim_state_dict`` allows
one empty group, and only with a single optimizer), so torch's own
checkpoint cannot be loaded back; ``optim.load_state_dict`` takes the same
groups.  A documented limitation of DSD, not of torch.optim.
Standalone: torch only, one process, gloo.  Exits 1 while the limitation exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam([{"params": list(model.parameters())}, {"params": []}, {"params": []}], lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29526")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim)
        fresh, fresh_optim = make()
        fresh_optim.load_state_dict(optim.state_dict())  # torch.optim itself takes the groups
        try:
            set_optimizer_state_dict(fresh, fresh_optim, osd)
        except ValueError as error:
            print(f"set_optimizer_state_dict refused torch's own OSD: {error}")
            return 1
        print("set_optimizer_state_dict loaded an OSD with two empty param groups")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
