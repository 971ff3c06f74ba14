"""DTensor: a sharded one-element parameter added to a width-1 activation cannot be trained.

A bare ``nn.Parameter`` of shape ``(1,)`` distributed with ``Shard(0)`` (here
on a mesh of one rank, where sharding changes nothing) is added to a
replicated activation of shape ``(4, 1)``.  The forward runs; the backward
reduces the broadcast gradient to the parameter's shape with a view
``(1, 1) -> (1,)``, which DTensor's sharding propagation refuses: "This
operation would remove or reshape sharded dimension 1, which requires
redistribution".  With width 2 or more (or a replicated parameter) it
trains.  The osdconform space refuses such scenarios
(``scenario/_refusals.py``): they cannot train, whatever the checkpointer.

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29543")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        failed = []
        for width in (1, 2):
            param = torch.nn.Parameter(distribute_tensor(torch.randn(width), mesh, [Shard(0)]))
            h = DTensor.from_local(torch.randn(4, width), mesh, [Replicate()], run_check=False)
            try:
                (h + param).redistribute(mesh, [Replicate()]).to_local().sum().backward()
                print(f"width {width}: trained")
            except RuntimeError as exc:
                print(f"width {width}: backward raised RuntimeError: {str(exc).splitlines()[0]}")
                failed.append(width)
        return 1 if failed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
