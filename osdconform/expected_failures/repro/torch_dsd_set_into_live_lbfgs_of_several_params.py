"""torch-dsd: an LBFGS over several parameters cannot be given its own state back once it has stepped.

LBFGS keeps its whole state (history, step size, counters) under its first
parameter; the others never have state.  ``set_optimizer_state_dict`` is
strict by default: once the target optimizer has state, it does not
initialise it (``_init_optim_state`` returns early) and demands saved state
for every parameter that requires grad, so setting the very dict
``get_optimizer_state_dict`` just returned, into the same optimizer, raises
"Missing optimizer state for parameter 'bias'".  Loading into fresh objects
fails earlier for another reason (``optim.step(closure=None)``, see
torch_dsd_set_closure_optimizer.py); a job that rolls back or reloads into
its live LBFGS meets this one.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29595")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = nn.Linear(4, 1)  # weight and bias: two parameters
        optim = torch.optim.LBFGS(model.parameters())
        x, y = torch.randn(8, 4), torch.randn(8, 1)

        def closure():
            optim.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss

        optim.step(closure)
        osd = get_optimizer_state_dict(model, optim)
        try:
            set_optimizer_state_dict(model, optim, osd)
        except RuntimeError as exc:
            print(f"BUG: setting an LBFGS's own state dict back into it raised: {exc}")
            return 1
    finally:
        dist.destroy_process_group()
    print("fixed: the state dict sets back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
