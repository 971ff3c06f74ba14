"""torch-dsd: a full set accepts a state tensor of the wrong shape.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))`` loads
an OSD whose ``exp_avg`` for a parameter has one row more than the parameter
without raising; the optimizer now holds a state tensor that does not fit its
parameter, and the error only comes at the next ``step()``, far from the
load that caused it (a load must refuse such a state, naming the parameter).
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
    os.environ.setdefault("MASTER_PORT", "29522")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim, options=full)
        exp_avg = osd["state"]["weight"]["exp_avg"]
        osd["state"]["weight"]["exp_avg"] = torch.cat([exp_avg, exp_avg[:1]])  # 3 rows for a 2-row weight
        model2, optim2 = make()
        try:
            set_optimizer_state_dict(model2, optim2, osd, options=full)
        except Exception as exc:  # noqa: BLE001 - any refusal is a fix
            print(f"the load refused the broken state: {type(exc).__name__}: {exc}")
            return 0
        loaded = tuple(optim2.state[model2.weight]["exp_avg"].shape)
        print(f"the load accepted exp_avg of shape {loaded} for a weight of shape {tuple(model2.weight.shape)}")
        return 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
