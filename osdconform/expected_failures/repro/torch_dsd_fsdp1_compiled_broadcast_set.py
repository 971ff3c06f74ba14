"""torch-dsd: a broadcast_from_rank0 set over FSDP1 with a compiled submodule fails off rank 0, and rank 0 hangs.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True,
broadcast_from_rank0=True))`` takes the full optimizer state dict on rank 0
and an empty dict elsewhere (as documented).  Under FSDP1 with a submodule
wrapped by ``torch.compile`` (so ``_get_fqns`` with and without the compiler
prefix differ), ``_load_optim_state_dict`` renames the keys of
``optim_state_dict["param_groups"]`` before the broadcast, on every rank: on
the ranks that hold ``{}`` that is ``KeyError: 'param_groups'``, and rank 0
waits for them in the broadcast forever.  Without the compile it loads.
Standalone: torch only, two processes, gloo.  Exits 1 while the bug exists.
"""

import functools
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

WORLD = 2
BROADCAST = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(1, 1, bias=False))

    def forward(self, x):
        return self.layers(x)


def build():
    torch.manual_seed(0)
    net = Net()
    net.layers = torch.compile(net.layers, backend="eager")
    units = {net.layers, net.layers._orig_mod[0]}
    policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: m in units)
    model = FSDP(net, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def rank_main(rank: int, verdict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29553")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    model, optim = build()
    model(torch.ones(2, 1)).sum().backward()
    optim.step()
    osd = get_optimizer_state_dict(model, optim, options=BROADCAST)
    fresh, fresh_optim = build()
    try:
        set_optimizer_state_dict(fresh, fresh_optim, osd if rank == 0 else {}, options=BROADCAST)
        verdict.put((rank, "loaded"))
    except Exception as error:  # noqa: BLE001
        verdict.put((rank, f"{type(error).__name__}: {error}"))
        verdict.close()
        verdict.join_thread()  # the answer is sent before the exit
        os._exit(0)  # rank 0 waits for this rank in the broadcast: leave without the group
    dist.destroy_process_group()


def main() -> int:
    ctx = mp.get_context("spawn")
    verdict = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, verdict)) for r in range(WORLD)]
    for p in procs:
        p.start()
    results = {}
    try:
        for _ in range(WORLD):
            rank, what = verdict.get(timeout=60)
            results[rank] = what
            if what != "loaded":
                break
    except Exception:  # noqa: BLE001 - a rank still waiting
        pass
    for rank in range(WORLD):
        print(f"rank {rank}: {results.get(rank, 'no answer (waiting in the broadcast)')}")
    for p in procs:
        p.join(timeout=30 if all(v == "loaded" for v in results.values()) else 1)
        if p.is_alive():
            p.kill()
    return 0 if len(results) == WORLD and all(v == "loaded" for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
