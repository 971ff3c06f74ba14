"""DeepSpeed ZeRO: a damaged optimizer-state file of one rank fails the load on that rank only.

Saved and loaded by 2 ranks; rank 1's zero_pp_rank_1_..._optim_states.pt is cut
short.  Rank 1's load_checkpoint raises; rank 0's loads its own file and returns
as if all went well, so a real job goes on to its next collective and hangs.

Run: python deepspeed_load_error_on_one_rank.py  (spawns 2 gloo processes, CPU)
Exits 1 while the defect exists, 0 once every rank raises.
"""
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

CONFIG = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2},
          "zero_allow_untested_optimizer": True}


def run(rank, directory, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29566", LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")

    def engine(seed):
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 2)
        return deepspeed.initialize(model=model, optimizer=torch.optim.Adam(model.parameters()), config=CONFIG)[0]

    src = engine(0)
    src.backward(src(torch.randn(2, 3)).sum())
    src.step()
    src.save_checkpoint(directory, tag="t")
    dist.barrier()
    if rank == 0:
        damaged = os.path.join(directory, "t", "zero_pp_rank_1_mp_rank_00_optim_states.pt")
        with open(damaged, "r+b") as fh:
            fh.truncate(os.path.getsize(damaged) // 2)
    dist.barrier()
    dst = engine(1)
    try:
        dst.load_checkpoint(directory, tag="t")
        results[rank] = "loaded"
    except Exception as exc:  # noqa: BLE001
        results[rank] = f"raised {type(exc).__name__}"
    # no collective after this point: rank 0 would wait for rank 1 forever


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(run, args=(d, results), nprocs=2)
        outcome = dict(results)
    print(outcome)
    sys.exit(0 if all(v.startswith("raised") for v in outcome.values()) else 1)
