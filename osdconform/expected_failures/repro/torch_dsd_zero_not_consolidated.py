"""torch-dsd: get_optimizer_state_dict cannot read a ZeroRedundancyOptimizer.

``get_optimizer_state_dict(model, zero)`` calls ``zero.state_dict()``, which
raises unless ``zero.consolidate_state_dict()`` ran first, and even then holds
the whole state on one rank only, keyed by index; so torch's state-dict API
gives no optimizer state dict for ZeRO (get fails, before any check of the
state).  Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
from torch.distributed.optim import ZeroRedundancyOptimizer


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29519")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optim = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=0.1)
        model(torch.randn(4, 3)).sum().backward()
        optim.step()
        try:
            osd = get_optimizer_state_dict(model, optim)
        except RuntimeError as exc:
            print(f"get_optimizer_state_dict raised: {exc}")
            return 1
        print(f"got an OSD with {len(osd['state'])} state entries")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
