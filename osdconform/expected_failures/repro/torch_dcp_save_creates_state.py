"""torch-dcp: saving the optimizer state of an optimizer that has not stepped yet gives it state.

``get_optimizer_state_dict`` (which every DCP save of optimizer state goes
through) initialises missing state by running a step with zero gradients, so
an Adam optimizer checkpointed before its first step comes out of the save
with ``step == 1`` and zero moments.  The save changed the job it checkpoints:
its next step uses the bias correction of step 2, and a run resumed from that
checkpoint is one step ahead of an uninterrupted one.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29581")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = torch.nn.Linear(3, 2)
        optim = torch.optim.Adam(model.parameters())
        before = len(optim.state)
        with tempfile.TemporaryDirectory() as tmp:
            dcp.save({"optimizer": get_optimizer_state_dict(model, optim)}, checkpoint_id=tmp)
        after = {k: v["step"].item() for k, v in zip(("weight", "bias"), optim.state.values())}
    finally:
        dist.destroy_process_group()
    if before == 0 and after:
        print(f"BUG: the save gave an unstepped optimizer state: steps {after}")
        return 1
    print("fixed: the save left the optimizer without state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
