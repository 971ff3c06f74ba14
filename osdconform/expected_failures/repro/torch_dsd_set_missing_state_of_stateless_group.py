"""torch-dsd: set_optimizer_state_dict rejects its own OSD when a param group keeps no state.

SGD with momentum in one param group and without it (plain SGD: no state) in
another: after a step, only the first group's parameters have state.
``get_optimizer_state_dict`` returns exactly that, and
``set_optimizer_state_dict`` (strict, the default) then refuses it:
``RuntimeError: Missing optimizer state for parameter 'bias' in checkpoint``,
for the full and the sharded form.  The parameter never has state, so there
is nothing missing; ``optim.load_state_dict`` loads the same state fine.
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
    optim = torch.optim.SGD(
        [{"params": [model.weight], "momentum": 0.9}, {"params": [model.bias]}], lr=0.1
    )
    if train:
        model(torch.randn(4, 3)).sum().backward()
        optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29521")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        failures = 0
        for full in (True, False):
            options = StateDictOptions(full_state_dict=full)
            model, optim = make(train=True)
            osd = get_optimizer_state_dict(model, optim, options=options)
            fresh, fresh_optim = make(train=False)
            try:
                set_optimizer_state_dict(fresh, fresh_optim, osd, options=options)
                print(f"full={full}: loaded")
            except RuntimeError as exc:
                print(f"full={full}: set_optimizer_state_dict raised RuntimeError: {exc}")
                failures += 1
        return 1 if failures else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
