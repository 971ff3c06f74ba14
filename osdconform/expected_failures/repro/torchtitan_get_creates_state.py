"""torchtitan: OptimizersContainer.state_dict() of an optimizer that has not stepped creates its state.

``OptimizersContainer.state_dict()`` first calls ``init_optim_state``, which
runs each optimizer without state once with zero gradients and lr 0 so that
there are tensors to return.  That is a side effect of a get: Adam's live
state now holds ``step == 1`` and zero moments, so the next real step uses
the bias correction of step 2 instead of step 1, and a checkpoint taken
before the first step resumes one step ahead of the run it continues.  (A
weight decay of AdamW's kind is applied with lr 0, so the parameters stay.)
Standalone: torchtitan and torch only, one process, no process group.
Exits 1 while the bug exists.
"""

import sys

import torch
from torchtitan.components.optimizer import OptimizersContainer, default_adamw


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    config = default_adamw(lr=0.1)
    config.implementation = "for-loop"
    return model, OptimizersContainer(config, model_parts=[model])


def step(model, container):
    torch.manual_seed(1)
    model(torch.randn(4, 3)).sum().backward()
    container.step()
    container.zero_grad()


def main() -> int:
    model, container = make()
    before = len(container.optimizers[0].state)
    container.state_dict()  # a checkpoint before the first step
    after = {k: v.item() for k, v in container.optimizers[0].state[model.weight].items() if k == "step"}
    print(f"state entries before the get: {before}; after: {len(container.optimizers[0].state)} {after}")
    step(model, container)
    untouched_model, untouched = make()
    step(untouched_model, untouched)
    differs = not torch.equal(model.weight, untouched_model.weight)
    print(f"the first step after the get differs from the same step without it: {differs}")
    return 1 if before == 0 and len(container.optimizers[0].state) > 0 else 0


if __name__ == "__main__":
    sys.exit(main())
