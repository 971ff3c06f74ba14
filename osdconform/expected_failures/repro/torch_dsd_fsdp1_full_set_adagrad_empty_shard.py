"""torch-dsd over FSDP1 (torch < 2.12): a full set leaves Adagrad without its state on ranks whose shard is empty.

Three ranks, FSDP1 (``SHARD_GRAD_OP``, ``use_orig_params=True``) over an
``Embedding(1, 1)``: its one-element weight leaves ranks 1 and 2 an empty
shard.  Adagrad, one step, ``get_optimizer_state_dict(full_state_dict=True)``,
then ``set_optimizer_state_dict`` of that OSD into a fresh model and
optimizer: the set succeeds, but the optimizers on the ranks with an empty
shard are left with a state entry that lacks ``sum``, so the next
``get_optimizer_state_dict`` (which steps an optimizer it thinks has no state)
or ``step()`` fails with ``KeyError: 'sum'`` (seen on 2.6.0 and 2.11.0;
loads on 2.12.0, 2.13.0 and 2.14.1).

Standalone: torch only, three processes, gloo.  Exits 1 while the defect holds.
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
from torch.distributed.fsdp import ShardingStrategy

WORLD = 3


def make(train: bool):
    torch.manual_seed(0)
    model = FSDP(torch.nn.Embedding(1, 1), sharding_strategy=ShardingStrategy.SHARD_GRAD_OP, use_orig_params=True,
                 device_id=torch.device("cpu"))
    optim = torch.optim.Adagrad(model.parameters(), lr=0.1, initial_accumulator_value=0.1)
    if train:
        model(torch.zeros(2, dtype=torch.long)).sum().backward()
        optim.step()
    return model, optim


def rank_main(rank: int, results) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29538"
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        options = StateDictOptions(full_state_dict=True)
        model, optim = make(train=True)
        osd = get_optimizer_state_dict(model, optim, options=options)
        fresh, fresh_optim = make(train=False)
        set_optimizer_state_dict(fresh, fresh_optim, osd, options=options)
        try:
            get_optimizer_state_dict(fresh, fresh_optim, options=options)
            results[rank] = "ok"
        except KeyError as error:
            results[rank] = f"KeyError: {error} (state after the set: {dict(fresh_optim.state)})"
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
