"""get_optimizer_state_dict keys a compiled module inside a checkpoint wrapper by ``_orig_mod``.

The user's FQN of a parameter is its name in the model as written, without
the segments wrappers insert; torch's state-dict APIs drop those of FSDP1,
activation checkpointing and torch.compile.  But when a module is compiled
first and then activation-checkpointed (``checkpoint_wrapper(torch.compile(block))``,
the order pytorch/torchtitan#2622 is about), named_parameters() yields
``0._checkpoint_wrapped_module._orig_mod.weight`` and get_optimizer_state_dict
drops the checkpoint segment only: it keys the state and param groups by
``0._orig_mod.weight``.  So the checkpoint names a parameter the model as
written does not have: the same model built without the wrappers (or wrapped
in the other order) cannot load it ("Missing optimizer state for parameter
'0.weight'"), and the flat form's keys name no parameter.  The other order,
``torch.compile(checkpoint_wrapper(block))``, is keyed ``0.weight``.  Exits 1
while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict


def keys(wrap) -> list[str]:
    torch.compiler.reset()
    model = nn.Sequential(nn.Linear(2, 2))
    model[0] = wrap(model[0])
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 2)).sum().backward()
    optimizer.step()
    return sorted(get_optimizer_state_dict(model, optimizer)["state"])


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29547")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        def compile_(m):
            return torch.compile(m, backend="eager")

        outer_compile = keys(lambda m: compile_(checkpoint_wrapper(m)))
        inner_compile = keys(lambda m: checkpoint_wrapper(compile_(m)))
    finally:
        dist.destroy_process_group()
    print("compile(checkpoint_wrapper(block)):", outer_compile)
    print("checkpoint_wrapper(compile(block)):", inner_compile)
    assert outer_compile == ["0.bias", "0.weight"], outer_compile
    if inner_compile == ["0.bias", "0.weight"]:
        print("fixed: both orders are keyed by the user's FQNs")
        return 0
    print("the compiled module inside the checkpoint wrapper keeps _orig_mod in its FQNs")
    return 1


if __name__ == "__main__":
    sys.exit(main())
