"""torch-dsd: set_optimizer_state_dict does not restore the hyperparameters of an empty param group.

An optimizer with a param group that holds no parameters (a placeholder a
training script fills later, or a group all of whose parameters went to
another optimizer) is valid in torch, and ``get_optimizer_state_dict`` saves
that group with its hyperparameters.  ``set_optimizer_state_dict`` then
mishandles it: with ``full_state_dict=True`` the loaded optimizer keeps its
own values for the empty group (``lr`` stays 1.0 where the checkpoint says
0.5); with the sharded form the empty group loses every key but ``params``
(no ``lr`` at all).  ``optim.load_state_dict`` restores the same dict fine.
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


def make(empty_lr: float):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam(
        [{"params": [model.weight]}, {"params": [], "lr": empty_lr}, {"params": [model.bias]}],
        lr=0.1,
    )
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29522")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        failures = 0
        for full in (True, False):
            options = StateDictOptions(full_state_dict=full)
            model, optim = make(empty_lr=0.5)
            osd = get_optimizer_state_dict(model, optim, options=options)
            fresh, fresh_optim = make(empty_lr=1.0)
            set_optimizer_state_dict(fresh, fresh_optim, osd, options=options)
            loaded = fresh_optim.param_groups[1]
            print(f"full={full}: saved empty group lr=0.5; loaded empty group: {loaded}")
            if loaded.get("lr") != 0.5:
                failures += 1
        return 1 if failures else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
