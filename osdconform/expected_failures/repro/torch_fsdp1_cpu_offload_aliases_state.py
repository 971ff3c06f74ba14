"""FSDP1 (and torch-dsd over FSDP1): a full OSD offloaded to CPU aliases its state tensors.

With a model on CPU, ``FSDP.optim_state_dict`` under ``FULL_STATE_DICT`` with
``FullOptimStateDictConfig(offload_to_cpu=True)`` (its default), and likewise
``get_optimizer_state_dict(..., StateDictOptions(full_state_dict=True,
cpu_offload=True))``, returns Adam's ``exp_avg`` and ``exp_avg_sq`` as the
same storage: both hold ``exp_avg_sq``'s values, so ``exp_avg`` is silently
lost.  With ``offload_to_cpu=False`` the values are right.  Standalone: torch
only, 2 processes, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run(rank: int, failed) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29525"
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
        fsdp = FSDP(model, use_orig_params=True, device_id=torch.device("cpu"))
        optim = torch.optim.Adam(fsdp.parameters(), lr=0.1)
        for _ in range(2):
            optim.zero_grad()
            fsdp(torch.randn(4, 3)).square().mean().backward()
            optim.step()
        osd = get_optimizer_state_dict(fsdp, optim, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if rank == 0:
            state = osd["state"]["0.weight"]
            aliased = state["exp_avg"].data_ptr() == state["exp_avg_sq"].data_ptr()
            equal = torch.equal(state["exp_avg"], state["exp_avg_sq"])
            print(f"exp_avg and exp_avg_sq share storage: {aliased}; equal values: {equal}")
            failed.value = int(aliased or equal)
    finally:
        dist.destroy_process_group()


def main() -> int:
    failed = mp.get_context("spawn").Value("i", 0)
    mp.spawn(run, args=(failed,), nprocs=2)
    return failed.value


if __name__ == "__main__":
    sys.exit(main())
