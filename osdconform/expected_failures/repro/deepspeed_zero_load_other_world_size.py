"""DeepSpeed ZeRO: a checkpoint saved at one data-parallel world size does not load at another.

Saved by 1 rank, loaded by 2: load_checkpoint raises ZeRORuntimeException
("Automatic adjustment of ZeRO's optimizer state partitioning with a new world
size is not currently supported"); DeepSpeed's way is the offline conversion to
a universal checkpoint (ds_to_universal) and checkpoint.load_universal.

Run: python deepspeed_zero_load_other_world_size.py  (spawns 1 then 2 gloo processes, CPU)
Exits 1 while the limit exists, 0 once a native checkpoint loads at another world size.
"""
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

CONFIG = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2},
          "zero_allow_untested_optimizer": True}


def run(rank, world, port, directory, save, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.Adam(model.parameters()), config=CONFIG)
    if save:
        engine.backward(engine(torch.randn(2, 3)).sum())
        engine.step()
        engine.save_checkpoint(directory, tag="t")
    else:
        try:
            engine.load_checkpoint(directory, tag="t")
            results[rank] = "loaded"
        except Exception as exc:  # noqa: BLE001
            results[rank] = f"{type(exc).__name__}: {exc}"
    dist.destroy_process_group()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d, mp.Manager() as manager:
        mp.spawn(run, args=(1, 29564, d, True, None), nprocs=1)
        results = manager.dict()
        mp.spawn(run, args=(2, 29565, d, False, results), nprocs=2)
        outcome = results.get(0)
    print(outcome)
    sys.exit(0 if outcome == "loaded" else 1)
