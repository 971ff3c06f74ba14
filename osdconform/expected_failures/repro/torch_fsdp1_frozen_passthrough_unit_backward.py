"""FSDP1: a unit whose forward hands back its input, and whose parameters are all frozen, breaks the backward.

A nested FSDP unit wraps a module that returns its input tensor unchanged (its
only submodule is never called) and holds only frozen parameters.  FSDP1
registers the unit's pre-backward hook on its output, which is the very
tensor the previous module produced, so the hook of the unit and the hooks
registered on that tensor before meet in one backward, and the first backward
fails: "expected to be in states [IDLE] but current state is
FORWARD_BACKWARD" (torch/distributed/fsdp/_runtime_utils.py,
_pre_backward_hook).  With a trainable (still unused) parameter, or with a
forward that returns a new tensor (``h * 1``), it trains.  So no checkpoint
of such a model can be taken at all: osdconform refuses the scenario
(scenario/_refusals.py).  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP


class PassThrough(nn.Module):
    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(1, 1)
        self.unused.requires_grad_(False)

    def forward(self, h):
        return h


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(1, 1)
        self.passthrough = PassThrough()

    def forward(self, x):
        return self.passthrough(self.first(x))


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29547")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = Model()
        cpu = torch.device("cpu")
        model.passthrough = FSDP(model.passthrough, use_orig_params=True, device_id=cpu)
        model = FSDP(model, use_orig_params=True, device_id=cpu)
        try:
            model(torch.ones(2, 1)).sum().backward()
        except ValueError as error:
            print("backward failed:", error)
            return 1
        print("backward ran")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
