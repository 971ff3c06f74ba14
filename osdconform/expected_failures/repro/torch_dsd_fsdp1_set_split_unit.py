"""torch-dsd over FSDP1: a set fails for optimizers that split an FSDP unit.

With ``use_orig_params=True`` two optimizers may each take part of one FSDP1
unit (here one per layer of an unwrapped ``Sequential``).  When neither keeps
state (plain SGD, momentum 0) ``get_optimizer_state_dict`` works, but
``set_optimizer_state_dict`` of the very dict it returned raises
``KeyError`` with the name of a parameter of the unit that the optimizer
does not hold, from FSDP's ``_rekey_sharded_optim_state_dict`` (it maps
every parameter of the unit to the optimizer's keys), in the full form, the
sharded form and with ``broadcast_from_rank0``.  The flat form
(``flatten_optimizer_state_dict=True``) loads.  (With state the get fails
first: see fsdp1_optim_state_dict_split_unit.py.)  Standalone: torch only,
one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

FORMS = {
    "full": StateDictOptions(full_state_dict=True),
    "sharded": StateDictOptions(),
    "full, broadcast_from_rank0": StateDictOptions(full_state_dict=True, broadcast_from_rank0=True),
    "flat": StateDictOptions(flatten_optimizer_state_dict=True),
}


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29587")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = FSDP(
            torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)),
            use_orig_params=True, device_id=torch.device("cpu"),
        )
        optims = (
            torch.optim.SGD(model.module[0].parameters(), lr=0.1),
            torch.optim.SGD(model.module[1].parameters(), lr=0.1),
        )
        failed = []
        for name, options in FORMS.items():
            osd = get_optimizer_state_dict(model, optims, options=options)
            try:
                set_optimizer_state_dict(model, optims, osd, options=options)
                print(f"{name}: the set loaded its own get's output")
            except KeyError as error:
                print(f"{name}: the set failed: KeyError: {error}")
                failed.append(name)
        return 1 if failed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
