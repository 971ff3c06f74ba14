"""torch-dsd: a full, flattened OSD cannot be loaded back.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True,
flatten_optimizer_state_dict=True))`` raises ``KeyError:
'param_groups.0.params.0'`` on the very dict that ``get_optimizer_state_dict``
returned with the same options: the full-state path unflattens the flat OSD,
then flattens it again with the generic ``_flatten_state_dict``, whose key
mapping has no entry for the per-parameter list of each param group.
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
    model = torch.nn.Linear(1, 1)
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 1)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29518")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        options = StateDictOptions(full_state_dict=True, flatten_optimizer_state_dict=True)
        model, optim = make()
        flat = get_optimizer_state_dict(model, optim, options=options)
        model2, optim2 = make()
        try:
            set_optimizer_state_dict(model2, optim2, flat, options=options)
        except KeyError as exc:
            print(f"set of the flat full OSD from get raised KeyError: {exc}")
            return 1
        print("set of the flat full OSD from get succeeded")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
