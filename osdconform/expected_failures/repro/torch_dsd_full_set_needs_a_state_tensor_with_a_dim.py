"""torch-dsd: a full-OSD set fails when no optimizer state tensor has a dimension.

``set_optimizer_state_dict(..., StateDictOptions(full_state_dict=True))`` takes
the device to load to from the target optimizer's own state tensors, but only
from those with ``dim() > 0``.  When there is none, it raises the bare
``AssertionError("Expected device to be set")`` instead of loading:

* every trainable parameter is 0-d (a scalar gain): Adam's ``exp_avg`` /
  ``exp_avg_sq`` and ``step`` are all 0-d;
* no parameter of the optimizer requires grad (all frozen): no state at all.

Both OSDs come from ``get_optimizer_state_dict`` on the same kind of model, so
a full round trip of torch's own output fails.  Standalone: torch only, one
process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)


class Gain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.5))  # 0-d

    def forward(self, x):
        return x * self.gain


def make(frozen: bool):
    torch.manual_seed(0)
    model = Gain() if not frozen else nn.Linear(3, 2).requires_grad_(False)
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    if not frozen:
        model(torch.randn(4, 3)).square().mean().backward()
        optim.step()
    return model, optim


def round_trip(frozen: bool) -> bool:
    full = StateDictOptions(full_state_dict=True)
    model, optim = make(frozen)
    osd = get_optimizer_state_dict(model, optim, options=full)
    model2, optim2 = make(frozen)
    try:
        set_optimizer_state_dict(model2, optim2, osd, options=full)
    except AssertionError as exc:
        what = "all parameters frozen" if frozen else "only a 0-d parameter"
        print(f"{what}: full set_optimizer_state_dict raised AssertionError: {exc}")
        return False
    return True


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29519")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        ok = [round_trip(frozen) for frozen in (False, True)]
        return 0 if all(ok) else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
