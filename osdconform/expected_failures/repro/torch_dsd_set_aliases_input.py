"""torch-dsd: after a set, the optimizer shares tensors with the dict it was loaded from.

``set_optimizer_state_dict`` (full or sharded) hands the caller's state
tensors to ``Optimizer.load_state_dict``, which keeps a tensor as it is when
its dtype and device already fit; DSD makes no copy.  So the loaded optimizer
aliases the caller's dict: changing (or reusing) that dict in place changes
the optimizer's moments and step count.  Only state that DSD rebuilds (DTensors
under FSDP2) is not aliased.  Standalone: torch only, one process, gloo.
Exits 1 while the bug exists.
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
    os.environ.setdefault("MASTER_PORT", "29521")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim, options=full)
        model2, optim2 = make()
        set_optimizer_state_dict(model2, optim2, osd, options=full)
        loaded = optim2.state[model2.weight]
        exp_avg_before = loaded["exp_avg"].clone()
        with torch.no_grad():
            osd["state"]["weight"]["exp_avg"].add_(1.0)  # the caller reuses its dict
        changed = not torch.equal(loaded["exp_avg"], exp_avg_before)
        print(f"mutating the loaded dict {'changed' if changed else 'did not change'} the optimizer's exp_avg")
        return 1 if changed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
