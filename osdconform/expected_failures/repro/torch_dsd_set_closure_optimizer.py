"""torch-dsd: set_optimizer_state_dict fails for an optimizer whose step needs a closure (LBFGS).

Before loading, ``set_optimizer_state_dict`` initialises a fresh optimizer's
state by calling ``optim.step(closure=None)`` with zero gradients
(``_init_optim_state``).  ``torch.optim.LBFGS.step`` calls its closure
unconditionally, so the load dies with ``TypeError: 'NoneType' object is not
callable`` before the state is looked at, for a full or a sharded OSD alike,
although ``LBFGS.load_state_dict`` loads the same state fine.  The same
initialisation makes ``get_optimizer_state_dict`` fail on an LBFGS that has
not stepped yet (checked second below).
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
    optim = torch.optim.LBFGS(model.parameters(), max_iter=2)
    x = torch.randn(4, 3)

    def closure():
        optim.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        return loss

    optim.step(closure)
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29518")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        full = StateDictOptions(full_state_dict=True)
        model, optim = make()
        osd = get_optimizer_state_dict(model, optim, options=full)
        fresh = torch.nn.Linear(3, 2)
        fresh_optim = torch.optim.LBFGS(fresh.parameters(), max_iter=2)
        failures = 0
        try:
            set_optimizer_state_dict(fresh, fresh_optim, osd, options=full)
            print("set: loaded")
        except TypeError as exc:
            print(f"set_optimizer_state_dict raised TypeError: {exc}")
            failures += 1
        unstepped = torch.nn.Linear(3, 2)
        try:
            get_optimizer_state_dict(unstepped, torch.optim.LBFGS(unstepped.parameters()), options=full)
            print("get (no step yet): fine")
        except TypeError as exc:
            print(f"get_optimizer_state_dict (no step yet) raised TypeError: {exc}")
            failures += 1
        return 1 if failures else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
