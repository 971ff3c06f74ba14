"""zero: ZeroRedundancyOptimizer.load_state_dict accepts state of the wrong shape.

A checkpoint whose ``exp_avg`` has one row more than its parameter (another
model's, or a corrupted one) loads without error; the mistake surfaces only
at the next ``step()`` as a size mismatch, far from its cause, instead of at
the load naming the parameter.  (``torch.optim.Optimizer.load_state_dict``
does not check shapes either; ZeRO adds no check of its own.)
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    zero.step()
    return model, zero


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29528")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        _, zero = make()
        zero.consolidate_state_dict(to=0)
        saved = zero.state_dict()
        state = saved["state"][0]  # the weight, shape (2, 3)
        state["exp_avg"] = torch.cat([state["exp_avg"], torch.zeros(1, 3)])
        _, fresh = make()
        try:
            fresh.load_state_dict(saved)
        except (ValueError, RuntimeError) as error:
            print(f"load refused the wrong shape: {error}")
            return 0
        print("load accepted exp_avg of shape (3, 3) for a (2, 3) parameter")
        return 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
