"""accelerate: ``AcceleratedOptimizer.load_state_dict`` keeps the caller's tensors.

It hands the dict to ``torch.optim.Optimizer.load_state_dict``, which copies
no tensor whose dtype and device already fit (and never the ``step``
tensor), so the loaded optimizer shares them with the caller's dict: a caller
that reuses the dict (loads it into a second optimizer, edits it, frees
it into a buffer pool) changes the optimizer it loaded.  Standalone:
accelerate and torch only, one process.  Exits 1 while the bug exists.
"""

import sys

import torch
from accelerate import Accelerator


def main() -> int:
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    model, optimizer = accelerator.prepare(model, torch.optim.Adam(model.parameters()))
    accelerator.backward(model(torch.randn(4, 3)).sum())
    optimizer.step()
    saved = {"state": {k: {n: v.clone() for n, v in st.items()} for k, st in optimizer.state_dict()["state"].items()},
             "param_groups": optimizer.state_dict()["param_groups"]}
    fresh = torch.optim.Adam(model.parameters())
    fresh = accelerator.prepare(fresh)
    fresh.load_state_dict(saved)
    before = fresh.state_dict()["state"][0]["step"].item()
    saved["state"][0]["step"].add_(5)  # the caller reuses its dict
    after = fresh.state_dict()["state"][0]["step"].item()
    if after != before:
        print(f"BUG: the loaded optimizer's step changed from {before} to {after} with the caller's dict")
        return 1
    print("fixed: the loaded optimizer holds its own tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
