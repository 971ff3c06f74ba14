"""torch-dsd: a full-OSD set fails under FSDP2 over TP when the strided shards are uneven.

FSDP2 on top of a ColwiseParallel ``Linear(3, 6)`` on a 2 x 2 (dp, tp) mesh
lays the weight out as ``(_StridedShard(0, sf=2), Shard(0))``: TP splits the
6 rows 3 + 3, FSDP splits each TP piece 2 + 1.
``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))``
re-shards the full state with ``distribute_tensor``, whose strided-shard path
raises a bare ``AssertionError`` for this uneven layout, so a full OSD that
torch itself produced cannot be loaded.  Standalone: torch only, 4 processes,
gloo.  Exits 1 while the bug exists.
"""

import os
import sys
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def build(mesh):
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor.parallel import ColwiseParallel, parallelize_module

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6, bias=False))
    parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(output_layouts=Replicate())})
    fully_shard(model, mesh=mesh["dp"])
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def run(rank: int, failed) -> None:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29521"
    dist.init_process_group("gloo", rank=rank, world_size=4)
    try:
        mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
        full = StateDictOptions(full_state_dict=True)
        model, optim = build(mesh)
        model(torch.randn(4, 3)).square().mean().backward()
        optim.step()
        osd = get_optimizer_state_dict(model, optim, options=full)
        model2, optim2 = build(mesh)
        try:
            set_optimizer_state_dict(model2, optim2, osd, options=full)
        except AssertionError:
            if rank == 0:
                traceback.print_exc()
            failed.value = 1
    finally:
        dist.destroy_process_group()


def main() -> int:
    failed = mp.get_context("spawn").Value("i", 0)
    mp.spawn(run, args=(failed,), nprocs=4)
    print("set_optimizer_state_dict raised AssertionError" if failed.value else "loaded fine")
    return failed.value


if __name__ == "__main__":
    sys.exit(main())
