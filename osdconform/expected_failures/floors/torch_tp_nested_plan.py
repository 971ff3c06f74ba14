"""TP (torch < 2.9): parallelize_module applies a nested plan entry to the wrong submodule.

A ``ModuleList`` holding a ``Conv1d`` and a ``Sequential`` with one ``Linear``:
``parallelize_module(model, mesh, {"layers.1.0": ColwiseParallel()})`` names
only that Linear, yet on torch 2.6.0, 2.7.1 and 2.8.0 it raises
``NotImplementedError: ColwiseParallel currently only support nn.Linear and
nn.Embedding!``: the style reaches a module the plan does not name (the
Conv1d), so such a model cannot be tensor-parallelised at all.  Applies on
2.9.0 and later.

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate
from torch.distributed.tensor.parallel import ColwiseParallel, parallelize_module


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Conv1d(1, 1, 1), torch.nn.Sequential(torch.nn.Linear(1, 1))])


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29536")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        try:
            parallelize_module(Model(), mesh, {"layers.1.0": ColwiseParallel(output_layouts=Replicate())})
        except NotImplementedError as error:
            print(f"a plan naming only a Linear failed: {error}")
            return 1
        print("the plan applied to the Linear it names")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
