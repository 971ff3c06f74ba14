"""zero: ZeroRedundancyOptimizer.load_state_dict accepts a parameter state that lacks an entry.

A checkpoint in which the weight's Adam state has no ``exp_avg`` (which the
bias, in the same group, has) loads without error: the optimizer is left
without it for that parameter (the next ``step()`` fails far from the load,
or, with state already there, mixes the checkpoint with stale state) instead
of the load refusing it.  (``torch.optim.Optimizer.load_state_dict`` does
not check either; ZeRO adds no check of its own.)
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
    os.environ.setdefault("MASTER_PORT", "29532")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        _, zero = make()
        zero.consolidate_state_dict(to=0)
        saved = zero.state_dict()
        del saved["state"][0]["exp_avg"]  # the weight's; the bias keeps its own
        _, fresh = make()
        try:
            fresh.load_state_dict(saved)
        except (ValueError, RuntimeError) as error:
            print(f"load refused the incomplete state: {error}")
            return 0
        print("load accepted the weight's state without exp_avg")
        return 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
