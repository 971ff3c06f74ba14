"""torch-dsd: a full-OSD set fails for an optimizer without tensor state (plain SGD).

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))``
looks for the device of the optimizer's local state among its tensors of
dim > 0 and asserts it found one.  SGD without momentum keeps no state at all,
so loading its (empty-state) OSD, the very dict ``get_optimizer_state_dict``
returned, dies with ``AssertionError: Expected device to be set``.  The
sharded form and ``optim.load_state_dict`` load it fine.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
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


def make(train: bool):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)  # momentum=0: no state
    if train:
        model(torch.randn(4, 3)).sum().backward()
        optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29520")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make(train=True)
        osd = get_optimizer_state_dict(model, optim, options=full)
        fresh, fresh_optim = make(train=False)
        try:
            set_optimizer_state_dict(fresh, fresh_optim, osd, options=full)
        except AssertionError as exc:
            print(f"set_optimizer_state_dict raised AssertionError: {exc}")
            return 1
        print("loaded")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
