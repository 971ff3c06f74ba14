"""DTensor (torch < 2.10): a convolution whose parameters are replicated DTensors cannot train.

Every parameter of a ``Conv1d`` distributed with ``Replicate()`` over a
one-dimensional mesh, the input a replicated DTensor too: the forward raises
``RuntimeError: Sharding propagation failed on op ... aten.convolution.default``
on torch 2.6.0, 2.7.1 and 2.9.0 (runs on 2.10.0 and 2.13.0).  On 2.6.0 a
``Conv2d`` with a bias fails too, in backward: ``ValueError: ShardingPropagator
error: output 0 does not have an associated TensorMeta`` (runs on 2.7.1); and a
``Conv2d`` with a (1, 3) kernel fails on 2.6.0, 2.7.1 and 2.9.0 inside gloo
(``writev ... Bad file descriptor`` / ``Pair is not connected``: a send to
itself in a world of one, runs on 2.10.0).  A
model with a convolution therefore cannot be trained, and its optimizer never
checkpointed, as plain DTensors.

Standalone: torch only, one process, gloo.  Exits 1 while either fails.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate, distribute_tensor


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29534")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        failed = 0
        for conv, shape in ((torch.nn.Conv1d(2, 1, kernel_size=1), (2, 2, 1)),
                            (torch.nn.Conv2d(1, 1, kernel_size=1), (2, 1, 1, 1)),
                            (torch.nn.Conv2d(1, 1, kernel_size=(1, 3), padding=(0, 1)), (2, 1, 1, 1))):
            for name, param in list(conv.named_parameters()):
                setattr(conv, name, torch.nn.Parameter(distribute_tensor(param.detach(), mesh, [Replicate()])))
            x = distribute_tensor(torch.randn(*shape), mesh, [Replicate()])
            try:
                conv(x).sum().backward()
                print(f"a replicated {type(conv).__name__} ran forward and backward")
            except (RuntimeError, ValueError) as error:
                print(f"a replicated {type(conv).__name__} failed: {str(error).splitlines()[0][:200]}")
                failed = 1
        return failed
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
