"""torch-dsd over FSDP1: a set of an Adafactor checkpoint divides by zero on a rank whose shard is empty.

Two ranks, FSDP1 (``FULL_SHARD``, ``use_orig_params=True``) over a
``Linear(1, 1)``: its weight and bias are one element each, so one rank
holds an empty view of a parameter.  Adafactor, one step (the rank with the
empty view gets no gradient for it and leaves it alone),
``get_optimizer_state_dict(full_state_dict=True)``, then
``set_optimizer_state_dict`` of that OSD into a fresh model and optimizer.
Before loading, the set gives the fresh optimizer state by a step with a
zero gradient for *every* parameter (``_init_optim_state``), the empty view
included, and Adafactor's step divides by ``param.numel() ** 0.5``:
``ZeroDivisionError: float division by zero``.  The same optimizer trains
fine, and ``Optimizer.load_state_dict`` needs no step.

Standalone: torch only, two processes, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

WORLD = 2


def make(train: bool):
    torch.manual_seed(0)
    model = FSDP(torch.nn.Linear(1, 1), use_orig_params=True, device_id=torch.device("cpu"))
    optim = torch.optim.Adafactor(model.parameters(), lr=0.01)
    if train:
        model(torch.ones(2, 1)).sum().backward()
        optim.step()
    return model, optim


def rank_main(rank: int, results) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29541"
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        options = StateDictOptions(full_state_dict=True)
        model, optim = make(train=True)
        osd = get_optimizer_state_dict(model, optim, options=options)
        fresh, fresh_optim = make(train=False)
        set_optimizer_state_dict(fresh, fresh_optim, osd, options=options)
        results[rank] = "ok"
    except Exception as error:  # noqa: BLE001 (a peer's failure shows here as a collective error)
        results[rank] = f"{type(error).__name__}: {str(error)[:100]}"
    finally:
        dist.destroy_process_group()


def main() -> int:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(rank_main, args=(results,), nprocs=WORLD)
        outcome = dict(sorted(results.items()))
    print(outcome)
    return 0 if all(v == "ok" for v in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
