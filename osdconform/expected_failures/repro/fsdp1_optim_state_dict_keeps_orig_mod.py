"""FSDP1: ``FSDP.optim_state_dict`` keys a compiled module's parameters with ``_orig_mod``.

A model with a submodule wrapped by ``torch.compile`` (or compiled whole),
under FullyShardedDataParallel (use_orig_params=True): the optimizer state
dict's keys keep torch.compile's ``_orig_mod`` segment
(``layers._orig_mod.0.weight``), though FSDP strips its own and activation
checkpointing's segments and ``torch.distributed.checkpoint.state_dict`` strips
this one too (``_get_fqns(..., skip_compiler_prefix=True)``).  So a checkpoint
saved from the compiled model does not load into the same model uncompiled
(``FSDP.optim_state_dict_to_load`` fails with a KeyError naming the
``_orig_mod`` key), nor the other way round.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(1, 1, bias=False))

    def forward(self, x):
        return self.layers(x)


def build(compile_where):
    torch.manual_seed(0)
    net = Net()
    if compile_where == "submodule":
        net.layers = torch.compile(net.layers, backend="eager")
    elif compile_where == "model":
        net = torch.compile(net, backend="eager")
    model = FSDP(net, use_orig_params=True, device_id=torch.device("cpu"))
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(2, 1)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29563")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        bad = False
        for where in ("submodule", "model"):
            model, optim = build(where)
            osd = FSDP.optim_state_dict(model, optim)
            keys = sorted(osd["state"])
            print(f"compiled {where}: keys {keys}")
            plain, plain_optim = build(None)
            try:
                FSDP.optim_state_dict_to_load(plain, plain_optim, osd)
                print("  loads into the model uncompiled")
            except Exception as error:  # noqa: BLE001
                print(f"  does not load into the model uncompiled: {type(error).__name__}: {error}")
            bad = bad or any("_orig_mod" in k for k in keys)
        return 1 if bad else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
