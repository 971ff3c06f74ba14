"""DTensor (torch < 2.8): a Linear replicated over a 2-D mesh fails in backward ("redistribute failed!").

Four ranks, a 2 x 2 mesh, a ``Linear`` whose parameters are DTensors with
``[Replicate(), Replicate()]`` and a replicated input: forward and
backward end in ``AssertionError: redistribute failed!`` on torch 2.6.0 and
2.7.1, so such a model cannot be trained, and its optimizer never checkpointed.
Runs on 2.8.0 and 2.13.0.

Standalone: torch only, four processes, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate, distribute_tensor

WORLD = 4


def rank_main(rank: int, results) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29535"
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        mesh = init_device_mesh("cpu", (2, 2))
        torch.manual_seed(0)
        linear = torch.nn.Linear(1, 1)
        places = [Replicate(), Replicate()]
        for name, param in list(linear.named_parameters()):
            setattr(linear, name, torch.nn.Parameter(distribute_tensor(param.detach(), mesh, places)))
        x = distribute_tensor(torch.randn(3, 1), mesh, places)
        try:
            linear(x).full_tensor().sum().backward()
            results[rank] = "trained"
        except AssertionError as error:
            results[rank] = f"AssertionError: {error}"
    finally:
        dist.destroy_process_group()


def main() -> int:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(rank_main, args=(results,), nprocs=WORLD)
        outcome = dict(results)
    print(outcome)
    return 0 if all(v == "trained" for v in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
