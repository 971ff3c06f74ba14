"""torch-dsd over FSDP1: a get fails when the parameters of one unit keep different state keys.

AdamW with ``amsgrad=True`` in one param group and ``False`` in another keeps
``max_exp_avg_sq`` for some parameters only.  When both groups hold
parameters of one FSDP1 unit (here a Linear's weight and bias) and the unit is
sharded over two ranks, ``get_optimizer_state_dict`` (full or sharded, with or
without cpu_offload) hands the state to FSDP's ``optim_state_dict``, whose
``_allgather_orig_param_states`` builds each state name's flat buffer from the
parameters that have it and then asserts "Manually calculated
_sharded_numel_padded is incorrect": such an optimizer cannot be
checkpointed.  At world 1 (nothing sharded) the same get works.
Standalone: torch only, two processes, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

WORLD = 2


def rank_main(rank: int, failures) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ.setdefault("MASTER_PORT", "29585")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = FSDP(torch.nn.Linear(3, 3), use_orig_params=True, device_id=torch.device("cpu"))
        optim = torch.optim.AdamW(
            [{"params": [model.weight]}, {"params": [model.bias], "amsgrad": True}], lr=0.1
        )
        model(torch.randn(4, 3)).sum().backward()
        optim.step()
        try:
            get_optimizer_state_dict(model, optim, options=StateDictOptions(full_state_dict=True))
        except AssertionError as exc:
            print(f"rank {rank}: AssertionError: {str(exc)[:120]}", flush=True)
            failures.put(rank)
    finally:
        dist.destroy_process_group()


def main() -> int:
    ctx = mp.get_context("spawn")
    failures = ctx.Queue()
    mp.start_processes(rank_main, args=(failures,), nprocs=WORLD, start_method="spawn")
    return 1 if not failures.empty() else 0


if __name__ == "__main__":
    sys.exit(main())
