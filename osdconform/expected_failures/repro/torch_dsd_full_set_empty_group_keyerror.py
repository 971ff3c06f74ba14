"""torch-dsd (torch < 2.7): a full set fails on an empty param group.

An AdamW with an empty param group beside one that holds the model:
``set_optimizer_state_dict(full_state_dict=True)`` of the OSD
``get_optimizer_state_dict`` returned with the same options raises
``KeyError: 'params'``, and so does the set with ``broadcast_from_rank0=True``
(the way large models load: rank 0 reads, the others receive), so such a
checkpoint cannot be loaded in the full form at all.  Loads on torch 2.7 (the
empty-group handling was reworked by pytorch/pytorch#147730, the fix of
#143828).

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

WORLD = 2


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.AdamW([{"params": list(model.parameters())}, {"params": []}], lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def rank_main(rank: int, results) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29533"
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        outcome = []
        for broadcast in (False, True):
            options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=broadcast)
            model, optim = make()
            osd = get_optimizer_state_dict(model, optim, options=options)
            fresh, fresh_optim = make()
            try:
                set_optimizer_state_dict(fresh, fresh_optim, osd if rank == 0 or not broadcast else {}, options=options)
                outcome.append("loaded")
            except KeyError as error:
                outcome.append(f"KeyError: {error}" + (" (broadcast_from_rank0)" if broadcast else ""))
        results[rank] = "loaded" if outcome == ["loaded", "loaded"] else "; ".join(outcome)
    finally:
        dist.destroy_process_group()


def main() -> int:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(rank_main, args=(results,), nprocs=WORLD)
        outcome = dict(results)
    print(outcome)
    return 0 if all(v == "loaded" for v in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
