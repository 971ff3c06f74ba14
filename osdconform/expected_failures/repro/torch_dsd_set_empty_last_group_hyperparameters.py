"""torch-dsd (torch < 2.7): an empty param group loses its hyperparameters on load, wherever it is.

An Adam whose last param group has no parameters: ``get_optimizer_state_dict``
saves the group with its hyperparameters, and after ``set_optimizer_state_dict``
(sharded form) the group holds only ``params`` (and the keys torch.optim fills
in), so the next ``step()`` raises ``KeyError: 'betas'``.  This is
pytorch/pytorch#143828, fixed in 2.7 by #147730; from 2.7 on only an empty
group *before* others still loses them (a defect recorded on its own).

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam([{"params": list(model.parameters())}, {"params": []}], lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29532")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim)
        fresh, fresh_optim = make()
        set_optimizer_state_dict(fresh, fresh_optim, osd)
        loaded = fresh_optim.param_groups[1]
        missing = sorted(k for k in optim.param_groups[1] if k not in loaded)
        if missing:
            print(f"the empty last group lost {missing} on load")
            return 1
        print("the empty last group kept its hyperparameters")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
