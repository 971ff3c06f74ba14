"""torch-dsd: a full-OSD set turns tuple hyperparameters into lists.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))`` loads
Adam's ``betas=(0.9, 0.999)`` as the list ``[0.9, 0.999]`` into the live
optimizer, so its param_groups no longer equal the source's
(``(0.9, 0.999) != [0.9, 0.999]`` in Python) and a later get returns a list
where the first get returned a tuple.  ``optimizer.load_state_dict`` keeps the
tuple.  Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
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
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim, options=full)
        model2, optim2 = make()
        set_optimizer_state_dict(model2, optim2, osd, options=full)
        before = optim.param_groups[0]["betas"]
        after = optim2.param_groups[0]["betas"]
        print(f"source betas: {before!r}; loaded betas: {after!r}")
        return 0 if type(after) is type(before) and after == before else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
