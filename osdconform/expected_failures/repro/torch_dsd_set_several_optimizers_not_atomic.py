"""torch-dsd: a set over several optimizers that fails leaves the earlier ones loaded.

Two parameters, each with its own optimizer: Adam over the first, Adam over
the second.  Train, ``get_optimizer_state_dict`` of both, drop the second
parameter's state from the OSD (a damaged or partial checkpoint), then
``set_optimizer_state_dict`` into two fresh optimizers whose learning rates
differ from the checkpoint's.  The set refuses the checkpoint, rightly
("Missing optimizer state for parameter 'second'"), but only when it reaches
the second optimizer: the first one already holds the checkpoint's state and
hyperparameters.  A job that catches the error and goes on (or retries with
another checkpoint) trains with optimizers that are neither its own nor the
checkpoint's.

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


class Two(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Parameter(torch.ones(2))
        self.second = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        return (x * self.first).sum() + (x * self.second).sum()


def make(lr: float, train: bool):
    torch.manual_seed(0)
    model = Two()
    optims = [torch.optim.Adam([model.first], lr=lr), torch.optim.Adam([model.second], lr=lr)]
    if train:
        model(torch.randn(2)).backward()
        for optim in optims:
            optim.step()
    return model, optims


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29546")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optims = make(lr=0.1, train=True)
        osd = get_optimizer_state_dict(model, optims)
        del osd["state"]["second"]
        fresh, fresh_optims = make(lr=0.5, train=False)
        try:
            set_optimizer_state_dict(fresh, fresh_optims, osd)
        except RuntimeError as exc:
            print(f"set_optimizer_state_dict refused the checkpoint: {exc}")
        else:
            print("set_optimizer_state_dict accepted the checkpoint")
        first = fresh_optims[0]
        changed = first.param_groups[0]["lr"] != 0.5  # the checkpoint's 0.1, not its own 0.5
        print(
            f"first optimizer after the failed set: lr {first.param_groups[0]['lr']}, "
            f"state keys {sorted(first.state[fresh.first])}"
        )
        return 1 if changed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
