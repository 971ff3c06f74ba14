"""torch-dsd: a full set accepts an OSD that lacks the only trained parameter, or a frozen one.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))``
(strict by default) refuses an OSD that lacks a parameter, naming it
("Missing optimizer state for parameter"), but only when the OSD holds state
for some other parameter.  A one-parameter model's OSD without its parameter
(an empty param group and no state) loads without error: the state is never
restored and the optimizer keeps whatever it had.  Nor does it notice a
missing parameter that is frozen (requires_grad=False) when the load runs,
whether or not it held state: the strict check looks only at parameters that
require grad, and nothing compares the param groups.
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

FULL = StateDictOptions(full_state_dict=True)


def make(groups, frozen=False):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2, bias=any("bias" in g for g in groups))
    optim = torch.optim.Adam([{"params": [getattr(model, n) for n in g]} for g in groups], lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    model.weight.requires_grad_(not frozen)  # frozen after the step: it holds state
    return model, optim


def load_without_weight(groups, frozen=False) -> str:
    model, optim = make(groups, frozen)
    osd = get_optimizer_state_dict(model, optim, options=FULL)
    for group in osd["param_groups"]:
        group["params"] = [f for f in group["params"] if f != "weight"]
    del osd["state"]["weight"]
    fresh, fresh_optim = make(groups, frozen)
    try:
        set_optimizer_state_dict(fresh, fresh_optim, osd, options=FULL)
    except (KeyError, ValueError, RuntimeError) as error:
        return f"refused: {type(error).__name__}: {error}"
    return "accepted"


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        two = load_without_weight([["weight"], ["bias"]])
        one = load_without_weight([["weight"]])
        print(f"'weight' missing, 'bias' has state: {two}")
        frozen = load_without_weight([["weight", "bias"]], frozen=True)
        print(f"'weight' missing, the only parameter: {one}")
        print(f"'weight' missing, frozen (it holds state), 'bias' has state: {frozen}")
        return 1 if "accepted" in (one, frozen) else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
