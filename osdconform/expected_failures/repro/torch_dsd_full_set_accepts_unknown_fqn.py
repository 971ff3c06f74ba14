"""torch-dsd: a full set silently ignores state for a parameter the model does not have.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))``
(strict by default) loads an OSD whose ``state`` has an entry for
``no_such_module.no_such_param`` without raising: the entry is dropped, so a
checkpoint of another model (or a renamed parameter) loads "successfully"
while the matching parameter's state is never restored.
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


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29523")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim, options=full)
        osd["state"]["no_such_module.no_such_param"] = dict(osd["state"]["weight"])
        model2, optim2 = make()
        try:
            set_optimizer_state_dict(model2, optim2, osd, options=full)
        except Exception as exc:  # noqa: BLE001 - any refusal is a fix
            print(f"the load refused the unknown FQN: {type(exc).__name__}: {exc}")
            return 0
        print("the load accepted state for 'no_such_module.no_such_param' without raising")
        return 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
