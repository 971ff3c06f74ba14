"""torch-dcp: over FSDP1, a rank that holds no piece of a parameter's state cannot load it.

``get_optimizer_state_dict`` over FSDP1 (SHARDED_STATE_DICT) gathers each
parameter's state and cuts every entry with a dim into
``tensor.chunk(world_size, dim=0)`` pieces, one ShardedTensor local shard per
rank; ``chunk`` makes fewer pieces than ranks when the first dim is small (1
piece of a 1 x 4 weight over 2 ranks, 3 of a dim of 5 over 4), so the last
ranks' ShardedTensor has no local shard.  The documented recipe saves
``get_optimizer_state_dict`` with ``dcp.save`` and loads it with
``dcp.load`` into the template ``get_optimizer_state_dict`` returns: on such a
rank ``_flatten_sharded_tensors`` drops the key of the empty ShardedTensor,
so the checkpoint holds keys the rank does not ask for; ``DefaultLoadPlanner``
takes that for a checkpoint written before torch 2.4, re-flattens the
template in the old key format (the list of param groups as one value) and
raises CheckpointException "Missing key in checkpoint state_dict:
optim.param_groups.": the checkpoint the same recipe wrote, at the same
world size and wrapping, does not load, and the message points nowhere near
the cause.  (A proposed fix, pytorch/pytorch#163480, was closed unmerged.)
Standalone: torch only, two processes, gloo on CPU.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

WORLD = 2


def make(seed: int):
    torch.manual_seed(seed)
    # weight 1 x 4, bias (1,): their state is cut into one piece each, held by rank 0.
    model = FSDP(torch.nn.Linear(4, 1), use_orig_params=True, device_id=torch.device("cpu"))
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def run(rank: int, directory: str, results) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29597")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model, optim = make(0)
        model(torch.randn(3, 4)).sum().backward()
        optim.step()
        dcp.save({"optim": get_optimizer_state_dict(model, optim)}, checkpoint_id=directory)
        target, target_optim = make(1)
        state = {"optim": get_optimizer_state_dict(target, target_optim)}
        try:
            dcp.load(state, checkpoint_id=directory)
            set_optimizer_state_dict(target, target_optim, state["optim"])
        except BaseException as exc:  # CheckpointException derives from BaseException
            text = str(exc)
            key = "Missing key in checkpoint state_dict: optim.param_groups."
            results[rank] = key if key in text else f"{type(exc).__name__}: {text[-300:]}"
        else:
            results[rank] = ""
    finally:
        dist.destroy_process_group()


def main() -> int:
    with tempfile.TemporaryDirectory() as directory, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(run, args=(directory, results), nprocs=WORLD)
        errors = dict(results)
    if any(errors.values()):
        print(f"BUG: dcp.load of the checkpoint the same recipe wrote raised: {errors[0] or errors[1]}")
        return 1
    print("fixed: the checkpoint loads on every rank")
    return 0


if __name__ == "__main__":
    sys.exit(main())
