"""torch-dcp: the documented load recipe refuses a checkpoint the save recipe wrote.

A model with an unused branch (a submodule whose output forward does not
use): its parameters require grad but never receive one, so after a training
step Adam holds no state for them, and the save recipe
(``dcp.save({"optim": get_optimizer_state_dict(model, optim)})``) rightly
writes none.  The load recipe takes its template from
``get_optimizer_state_dict`` of the fresh model and optimizer; that get
first "initialises" the optimizer by a step with zero gradients for every
parameter that requires grad (``_init_optim_state``), the unused ones too,
so the template asks for ``optim.state.unused.weight.step`` and ``dcp.load``
raises CheckpointException "Missing key in checkpoint state_dict": a job
with a parameter that got no gradient (an unused branch, a parameter frozen
before its first step, a plain SGD group trained beside an idle Adam group)
cannot resume from its own checkpoint.  The template's keys depend on
whether the target has stepped, not on what the checkpoint holds.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


class WithUnusedBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(3, 2)
        self.unused = nn.Linear(3, 2)  # registered, never called

    def forward(self, x):
        return self.used(x)


def make(seed: int):
    torch.manual_seed(seed)
    model = WithUnusedBranch()
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29593")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = make(0)
        model(torch.randn(4, 3)).sum().backward()
        optim.step()
        with tempfile.TemporaryDirectory() as tmp:
            dcp.save({"optim": get_optimizer_state_dict(model, optim)}, checkpoint_id=tmp)
            target, target_optim = make(1)
            state = {"optim": get_optimizer_state_dict(target, target_optim)}
            try:
                dcp.load(state, checkpoint_id=tmp)
                set_optimizer_state_dict(target, target_optim, state["optim"])
            except BaseException as exc:  # CheckpointException derives from BaseException
                text = str(exc)
                missing = "Missing key in checkpoint state_dict" in text
                print(f"BUG: loading the checkpoint the save recipe wrote raised {type(exc).__name__}"
                      + (": Missing key in checkpoint state_dict (optim.state.unused.*)" if missing else f": {text[:300]}"))
                return 1
    finally:
        dist.destroy_process_group()
    print("fixed: the checkpoint loads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
