"""accelerate: ``AcceleratedOptimizer.load_state_dict`` loads a state that does not fit its parameters.

It hands the dict to ``torch.optim.Optimizer.load_state_dict``, which checks
neither shapes nor state entries: an ``exp_avg`` with one row more than its
parameter, or a parameter's state without its ``exp_avg``, loads without a
word, and the mistake surfaces only at the next ``step()`` (a size mismatch,
or a KeyError), far from the load, instead of from the load naming the
parameter.  Standalone: accelerate and torch only, one process.  Exits 1
while the bug exists.
"""

import copy
import sys

import torch
from accelerate import Accelerator


def trained():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    model, optimizer = accelerator.prepare(model, torch.optim.Adam(model.parameters()))
    accelerator.backward(model(torch.randn(4, 3)).sum())
    optimizer.step()
    return accelerator, model, optimizer


def main() -> int:
    accelerator, model, optimizer = trained()
    good = optimizer.state_dict()
    wrong_shape = copy.deepcopy(good)
    wrong_shape["state"][0]["exp_avg"] = torch.zeros(3, 3)  # the weight is 2 x 3
    missing_key = copy.deepcopy(good)
    del missing_key["state"][0]["exp_avg"]
    accepted = []
    for name, broken in (("wrong shape", wrong_shape), ("missing exp_avg", missing_key)):
        _, _, fresh = trained()
        try:
            fresh.load_state_dict(broken)
        except Exception as exc:
            print(f"{name}: refused: {exc}")
            continue
        accepted.append(name)
        print(f"{name}: accepted by load_state_dict")
    if accepted:
        print(f"BUG: AcceleratedOptimizer.load_state_dict accepted: {accepted}")
        return 1
    print("fixed: both refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
