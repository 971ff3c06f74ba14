"""torch-dsd: set_optimizer_state_dict fails for SparseAdam.

Before loading, ``set_optimizer_state_dict`` initialises a fresh optimizer's
state by giving every parameter a *dense* zero gradient and calling
``optim.step()`` (``_init_optim_state``).  ``torch.optim.SparseAdam`` refuses
dense gradients, so loading a SparseAdam checkpoint dies with "SparseAdam does
not support dense gradients", although ``SparseAdam.load_state_dict`` loads
the same state fine.  Standalone: torch only, one process, gloo.  Exits 1
while the bug exists.
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


def make(train: bool):
    torch.manual_seed(0)
    model = torch.nn.Embedding(5, 3, sparse=True)
    optim = torch.optim.SparseAdam(model.parameters(), lr=0.1)
    if train:
        model(torch.tensor([0, 2, 2])).sum().backward()
        optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29519")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make(train=True)
        osd = get_optimizer_state_dict(model, optim, options=full)
        fresh, fresh_optim = make(train=False)
        try:
            set_optimizer_state_dict(fresh, fresh_optim, osd, options=full)
        except RuntimeError as exc:
            print(f"set_optimizer_state_dict raised RuntimeError: {exc}")
            return 1
        print("loaded")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
