"""torch-dsd: a full set silently accepts a parameter state with an entry missing.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))``
loads an OSD where one parameter's Adam state lacks ``exp_avg`` (which its
peers in the group have) without raising: the full-state path fills the gap
with the target optimizer's own old ``exp_avg``, so the loaded optimizer
silently mixes the checkpoint with whatever state it held before.
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


def make(seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29524")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make(0)
        osd = get_optimizer_state_dict(model, optim, options=full)
        del osd["state"]["weight"]["exp_avg"]
        model2, optim2 = make(1)
        old = optim2.state[model2.weight]["exp_avg"].clone()
        try:
            set_optimizer_state_dict(model2, optim2, osd, options=full)
        except Exception as exc:  # noqa: BLE001 - any refusal is a fix
            print(f"the load refused the incomplete state: {type(exc).__name__}: {exc}")
            return 0
        kept = torch.equal(optim2.state[model2.weight].get("exp_avg", torch.empty(0)), old)
        print(f"the load accepted state without 'exp_avg' for 'weight' (kept the old exp_avg: {kept})")
        return 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
