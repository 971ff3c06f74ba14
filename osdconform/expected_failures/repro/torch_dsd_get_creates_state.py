"""torch-dsd: getting the state of an optimizer that has none yet creates it.

Before the first ``step()``, ``get_optimizer_state_dict`` (full or sharded)
runs the optimizer once with zero gradients and lr 0 (``_init_optim_state``)
to have something to return.  That is a side effect of a get: Adam's live
state now holds ``step == 1`` and zero moments, so the optimizer's next real
step uses the bias correction of step 2 instead of step 1 (SGD with momentum
gets a ``momentum_buffer``).  A get must leave the optimizer as it was.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29519")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optim = torch.optim.Adam(model.parameters(), lr=0.1)
        before = {p: dict(s) for p, s in optim.state.items()}
        get_optimizer_state_dict(model, optim, options=StateDictOptions(full_state_dict=True))
        after = {p: dict(s) for p, s in optim.state.items()}
        steps = sorted({float(s["step"]) for s in after.values() if "step" in s})
        print(f"optimizer state entries before get: {len(before)}, after: {len(after)} (step {steps})")
        return 0 if len(after) == len(before) else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
