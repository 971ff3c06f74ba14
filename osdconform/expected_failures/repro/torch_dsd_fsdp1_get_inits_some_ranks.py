"""torch-dsd over FSDP1: get_optimizer_state_dict "initialises" the optimizer on some ranks only.

``get_optimizer_state_dict`` first calls ``_init_optim_state``, which runs a
zero-gradient step when *this rank's* optimizer holds no state and no
gradient.  Under FSDP1 each rank holds a piece of each unit's flat parameter;
a rank whose pieces hold no element of a trained parameter (here rank 3 of 4:
its piece of the Linear unit is padding) has only empty views, no gradient
and no state, so it steps, and gives state to every parameter that requires
grad, among them ``b.p``, an unused parameter that no rank trained.  Rank 0
holds ``b.p``'s element without state, so FSDP's
``_allgather_orig_param_states`` miscounts its flat buffer there and raises
AssertionError "Manually calculated _sharded_numel_padded is incorrect",
while ranks 1-3 go on into the next collective, which can only hang or fail
(here with a gloo connection error once rank 0 leaves).  The same model trains fine; it is the
checkpoint that fails (dcp.save of torch-dcp, and torch-dsd's get).
Standalone: torch only, four processes, gloo on CPU.  Exits 1 while the bug exists.
"""

import functools
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

WORLD = 4


class Unused(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.randn(1))  # registered, never used in forward


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(5, 1)  # flat: 5 + 3 alignment + 1 = 9, pieces of 3: rank 3 gets padding
        self.b = Unused()

    def forward(self, x):
        return self.a(x)


def run(rank: int, results) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29601")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = Model()
        units = {model.a, model.b}
        policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: m in units)
        model = FSDP(model, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))
        optim = torch.optim.Adam(model.parameters(), lr=0.1)
        model(torch.randn(2, 5)).sum().backward()
        optim.step()
        results[rank] = f"state for {len(optim.state)} parameter(s) after the step"
        try:
            get_optimizer_state_dict(model, optim)
        except Exception as exc:  # noqa: BLE001
            results[rank] += f"; get raised {type(exc).__name__}: {str(exc)[:70]}"
        else:
            results[rank] += "; get returned"
    finally:
        dist.destroy_process_group()


def main() -> int:
    with mp.Manager() as manager:
        results = manager.dict()
        ctx = mp.start_processes(run, args=(results,), nprocs=WORLD, join=False, start_method="spawn")
        deadline = time.monotonic() + 180
        try:
            while not ctx.join(timeout=5):
                if time.monotonic() > deadline:
                    break
        except Exception:  # noqa: BLE001 (a rank's own exception: reported below)
            pass
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
        results = dict(results)
    for rank in sorted(results):
        print(f"rank {rank}: {results[rank]}")
    if any("get returned" not in v for v in results.values()) or len(results) < WORLD:
        print("BUG: get_optimizer_state_dict failed (or hung) over FSDP1")
        return 1
    print("fixed: every rank got the optimizer state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
