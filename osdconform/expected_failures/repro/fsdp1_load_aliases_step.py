"""fsdp1: a load keeps the caller's tensors (``step``, and views of the moments).

Through ``FSDP.optim_state_dict_to_load`` + ``optim.load_state_dict`` (the
documented load path) ``step`` is passed through as given, and in a world of
one rank (nothing to cut) so is every other state value;
``Optimizer.load_state_dict`` copies nothing that already fits.  So a caller that reuses or frees the dict it loaded from
changes the optimizer.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

FULL = (StateDictType.FULL_STATE_DICT, FullStateDictConfig(), FullOptimStateDictConfig(offload_to_cpu=False))


def make():
    torch.manual_seed(0)
    model = FSDP(torch.nn.Linear(3, 2), use_orig_params=True, device_id=torch.device("cpu"))
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29530")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = make()
        with FSDP.state_dict_type(model, *FULL):
            osd = FSDP.optim_state_dict(model, optim)
        fresh, fresh_optim = make()
        with FSDP.state_dict_type(fresh, *FULL):
            try:
                fresh_optim.load_state_dict(FSDP.optim_state_dict_to_load(fresh, fresh_optim, osd))
            except (ValueError, RuntimeError, KeyError) as error:
                print(f"load refused the broken OSD: {type(error).__name__}: {error}")
                return 0
        loaded = {k: v.clone() for k, v in fresh_optim.state[fresh.weight].items()}
        for value in osd["state"]["weight"].values():
            value.add_(5)  # the caller reuses its dict
        changed = sorted(k for k, v in fresh_optim.state[fresh.weight].items() if not torch.equal(v, loaded[k]))
        print(f"optimizer state entries changed by mutating the loaded dict: {changed}")
        return 1 if changed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
