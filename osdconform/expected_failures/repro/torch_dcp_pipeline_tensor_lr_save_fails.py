"""torch-dcp: under pipeline parallelism a DCP save fails when one stage's param group has a tensor lr and another's a float.

The shared param-group keys of pytorch/pytorch#126595 (see
torch_dcp_pipeline_stages_share_param_group_keys.py) seen from another side:
each stage's ``get_optimizer_state_dict`` (default options) numbers its own
param groups from 0, so ``optim.param_groups.0.lr`` is one key on every stage.
Where stage 0's group holds a tensor ``lr`` (``torch.optim`` accepts one) and
stage 1's a float, the two write items differ in index (a tensor's carries
its offsets), DCP's de-duplication keeps both, and ``dcp.save`` fails in
``create_default_global_save_plan`` with ``AssertionError: item.index.fqn not
in md``, which names neither the key nor why.  Standalone: torch only, two
processes (one stage each), gloo on CPU.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

WORLD = 2


def run(rank: int, directory: str, results) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29597")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
        model[1 - rank] = torch.nn.Identity()  # this rank's stage; FQNs kept
        lr = torch.tensor(0.01) if rank == 0 else 0.01
        optim = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        model(torch.randn(3, 4)).sum().backward()
        optim.step()
        try:
            dcp.save({"optim": get_optimizer_state_dict(model, optim)}, checkpoint_id=directory)
            results[rank] = None
        except BaseException as exc:  # noqa: BLE001 - CheckpointException is a BaseException
            results[rank] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
    finally:
        dist.destroy_process_group()


def main() -> int:
    with tempfile.TemporaryDirectory() as directory, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(run, args=(directory, results), nprocs=WORLD)
        results = dict(results)
    failed = {rank: error for rank, error in sorted(results.items()) if error}
    for rank, error in failed.items():
        print(f"BUG: stage {rank}'s dcp.save failed: {error}")
    if failed:
        return 1
    print("fixed: stages whose group 0 has a tensor lr on one and a float on the other save")
    return 0


if __name__ == "__main__":
    sys.exit(main())
