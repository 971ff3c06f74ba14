"""DTensor (older torch): batch norm has no sharding strategy, so it cannot run on DTensors.

A ``BatchNorm1d`` without affine parameters or running statistics, fed a
replicated DTensor (as the dtensor plan feeds every module): the forward
raises ``NotImplementedError: Operator aten.native_batch_norm.default does
not have a sharding strategy registered``, so a model with batch norm cannot
be trained as plain DTensors.

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate, distribute_tensor


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29540")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        weight = torch.nn.Parameter(distribute_tensor(torch.ones(1), mesh, [Replicate()]))
        norm = torch.nn.BatchNorm1d(1, affine=False, track_running_stats=False)
        x = distribute_tensor(torch.randn(4, 1), mesh, [Replicate()])
        try:
            norm(x * weight).sum().backward()
        except NotImplementedError as error:
            print(f"batch norm on a DTensor failed: {error}")
            return 1
        print("batch norm ran on a DTensor")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
