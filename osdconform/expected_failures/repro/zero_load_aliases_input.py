"""zero: ZeroRedundancyOptimizer.load_state_dict keeps the caller's tensors.

After ``zero.load_state_dict(sd)`` the optimizer's state holds the very
tensors of ``sd`` (``step`` and, when dtype and device already fit, the
moments too: ``_recursive_copy_to_device`` and ``Optimizer.load_state_dict``
copy nothing that needs no conversion), so a caller that reuses or frees the
dict it loaded from changes the optimizer.  ``torch.optim``'s own
``Optimizer.load_state_dict`` shares this (see torch_dsd_set_aliases_input.py);
ZeRO's copy-to-device helper looks like a copy and is not one.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    zero.step()
    return model, zero


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29527")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        _, zero = make()
        zero.consolidate_state_dict(to=0)
        saved = zero.state_dict()
        fresh_model, fresh = make()
        fresh.load_state_dict(saved)
        before = {k: v.clone() for k, v in fresh.optim.state[fresh_model.weight].items()}
        for state in saved["state"].values():
            for value in state.values():
                value.add_(1)  # the caller reuses its dict
        after = fresh.optim.state[fresh_model.weight]
        changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
        print(f"optimizer state entries changed by mutating the loaded dict: {changed}")
        return 1 if changed else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
