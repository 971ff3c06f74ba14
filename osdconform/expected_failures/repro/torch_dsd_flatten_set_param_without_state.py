"""torch-dsd: the flat form does not load when a trainable parameter has no state.

AdamW over two Linears, of which only the first is used in forward: after a
step the second has no state (it never got a gradient).  The flat OSD
``get_optimizer_state_dict(flatten_optimizer_state_dict=True)`` returns then
fails to load back with the same options: ``set_optimizer_state_dict``
rebuilds the missing parameter's state as a dict of empty dicts, and
``Optimizer.load_state_dict`` raises ``TypeError: float() argument must be a
string or a real number, not 'dict'`` (torch 2.10 and later; before 2.10
``KeyError: 'state.<fqn>.step'``).  The nested form raises its clear strict
error instead (a defect of its own: get's own output refused).  This is
pytorch/pytorch#192224.

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
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
    model = torch.nn.ModuleDict({"used": torch.nn.Linear(2, 1), "unused": torch.nn.Linear(2, 1)})
    optim = torch.optim.AdamW(model.parameters(), lr=0.1)
    if train:
        model["used"](torch.randn(4, 2)).sum().backward()
        optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29537")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        options = StateDictOptions(flatten_optimizer_state_dict=True)
        model, optim = make(train=True)
        osd = get_optimizer_state_dict(model, optim, options=options)
        fresh, fresh_optim = make(train=False)  # as a resumed job builds them
        try:
            set_optimizer_state_dict(fresh, fresh_optim, osd, options=options)
        except (TypeError, KeyError) as error:
            print(f"the flat OSD did not load: {type(error).__name__}: {error}")
            return 1
        except RuntimeError as error:
            print(f"refused with a clear error (fixed?): {error}")
            return 0
        print("the flat OSD loaded")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
