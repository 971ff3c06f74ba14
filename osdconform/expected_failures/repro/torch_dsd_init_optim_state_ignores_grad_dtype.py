"""torch-dsd: get_optimizer_state_dict fails for parameters with a ``grad_dtype`` (pytorch/pytorch#191918).

When an optimizer has no state and none of its parameters holds a gradient
(before its first step; for one that keeps no state, such as plain SGD,
whenever its gradients were zeroed), ``get_optimizer_state_dict`` and
``set_optimizer_state_dict`` prime it (``_init_optim_state``) by assigning
``param.grad = torch.zeros_like(param)``, a gradient in the *parameter's*
dtype.  A parameter whose ``grad_dtype`` is another (a float32 weight that
accumulates bfloat16 gradients) refuses it: "attempting to assign a gradient
with dtype 'float' to a tensor with grad_dtype 'BFloat16'".  So such a model's
optimizer cannot be checkpointed through torch.distributed.checkpoint's
state-dict API before its first step, nor loaded into a new job (fresh
optimizers have neither state nor gradients).
Standalone: torch only, one process (gloo).  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = torch.nn.Linear(3, 2)
        for param in model.parameters():
            param.grad_dtype = torch.bfloat16
        optim = torch.optim.SGD(model.parameters(), lr=0.1)
        try:
            get_optimizer_state_dict(model, optim)
        except RuntimeError as error:
            print(f"get_optimizer_state_dict failed: {error}")
            return 1
        print("get_optimizer_state_dict returned")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
