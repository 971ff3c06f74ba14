"""zero: ZeroRedundancyOptimizer.load_state_dict keeps the caller's tensor hyperparameters.

``Optimizer.load_state_dict`` deep-copies the loaded ``param_groups``, so a
plain optimizer given a tensor ``lr`` (``lr=torch.tensor(0.1)``) keeps a lr
of its own.  ``ZeroRedundancyOptimizer.load_state_dict`` then syncs its
groups back from the caller's dict (``_sync_param_groups(state_dict["param_groups"],
self.param_groups)``, then into the local optimizer's groups), assigning
every hyperparameter object as it is: both its exposed and its local
optimizer's groups hold the caller's very lr tensor.  A caller that reuses
or frees the dict it loaded from (updates it in place, loads it into a
second optimizer that a scheduler then steps) changes the lr this optimizer
steps with, silently.  Not the aliasing of state tensors
(zero_load_aliases_input.py): torch.optim alone does not alias its groups.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import copy
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer


def make_zero():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.SGD, lr=torch.tensor(0.1))
    model(torch.randn(4, 3)).sum().backward()
    zero.step()
    return zero


def make_plain():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    return torch.optim.SGD(model.parameters(), lr=torch.tensor(0.1))


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        zero = make_zero()
        zero.consolidate_state_dict(to=0)
        # Copies, so that each loader has a dict of its own (state_dict() hands out the lr it holds).
        saved = copy.deepcopy(zero.state_dict())
        fresh = make_zero()
        fresh.load_state_dict(saved)
        plain_saved = copy.deepcopy(zero.optim.state_dict())
        plain = make_plain()
        plain.load_state_dict(plain_saved)

        saved["param_groups"][0]["lr"].add_(1)  # the caller reuses its dict
        plain_saved["param_groups"][0]["lr"].add_(1)

        exposed = float(fresh.param_groups[0]["lr"])
        local = float(fresh.optim.param_groups[0]["lr"])
        own = float(plain.param_groups[0]["lr"])
        print("after the caller adds 1 to the lr of the dict it loaded (0.1):")
        print(f"  ZeroRedundancyOptimizer lr {exposed:g}, its local optimizer's lr {local:g}")
        print(f"  plain torch.optim.SGD lr {own:g}")
        return 1 if exposed != own or local != own else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
