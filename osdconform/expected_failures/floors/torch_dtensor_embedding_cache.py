"""DTensor (torch < 2.11): an Embedding's backward takes its gradient's shape from another Embedding's.

One process, replicated DTensors: an ``Embedding(2, 1)`` trains, then an
``Embedding(3, 1)``: its backward fails with ``RuntimeError: Function
EmbeddingBackward0 returned an invalid gradient at index 0 - got [2, 1] but
expected shape compatible with [3, 1]``.  DTensor's sharding propagation
caches the output of ``embedding_dense_backward`` under a key that leaves out
``num_weights``, so the second table gets the first one's gradient shape.  In
a process that trains several models one after the other (a warm test world,
a sweep) an Embedding under plain DTensors cannot be trusted to train.  Seen
on 2.6.0, 2.7.1, 2.9.0 and 2.10.0; trains on 2.11.0, 2.12.0 and 2.13.0.

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
    os.environ.setdefault("MASTER_PORT", "29539")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        for num in (2, 3):
            table = torch.nn.Embedding(num, 1)
            table.weight = torch.nn.Parameter(distribute_tensor(table.weight.detach(), mesh, [Replicate()]))
            rows = distribute_tensor(torch.tensor([0, 1]), mesh, [Replicate()])
            try:
                table(rows).sum().backward()
            except RuntimeError as error:
                print(f"Embedding({num}, 1) after another failed: {error}")
                return 1
        print("both Embeddings trained")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
