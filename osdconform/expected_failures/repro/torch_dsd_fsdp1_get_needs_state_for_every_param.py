"""torch-dsd over FSDP1: a get fails when some parameters of a unit have no state.

Plain SGD (momentum 0) keeps no state, so an optimizer with a plain group and
a momentum group over parameters of one FSDP1 unit holds state for some of
the unit's parameters only.  ``get_optimizer_state_dict`` (full or sharded)
hands it to FSDP's ``optim_state_dict``, which raises ``RuntimeError:
layers.0.weight is not in the optimizer state. The FSDPParamInfo has the
param keys [...]``: such an optimizer cannot be checkpointed at all (without
FSDP, DSD returns its state).
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29549")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = FSDP(torch.nn.Linear(2, 2), use_orig_params=True, device_id=torch.device("cpu"))
        optim = torch.optim.SGD(
            [{"params": [model.weight]}, {"params": [model.bias], "momentum": 0.9}], lr=0.1
        )
        model(torch.randn(3, 2)).sum().backward()
        optim.step()
        failed = False
        for options in (StateDictOptions(full_state_dict=True), StateDictOptions()):
            try:
                get_optimizer_state_dict(model, optim, options=options)
                print(f"full={options.full_state_dict}: got it")
            except RuntimeError as exc:
                print(f"full={options.full_state_dict}: RuntimeError: {str(exc)[:160]}")
                failed = True
        return 1 if failed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
