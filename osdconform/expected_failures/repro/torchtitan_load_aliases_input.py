"""torchtitan: OptimizersContainer.load_state_dict keeps the caller's tensors.

``load_flat_optim_state_dict`` puts the values of the flat dict into the
optimizer's state dict as they are and ``Optimizer.load_state_dict`` copies
nothing whose dtype and device already fit, so after
``container.load_state_dict(sd)`` the optimizer's state holds the very tensors
of ``sd``: a caller that reuses or frees the dict it loaded from changes the
optimizer.
Standalone: torchtitan and torch only, one process, no process group.
Exits 1 while the bug exists.
"""

import sys

import torch
from torchtitan.components.optimizer import OptimizersContainer, default_adamw


def make(seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    config = default_adamw(lr=0.1)
    config.implementation = "for-loop"
    container = OptimizersContainer(config, model_parts=[model])
    model(torch.randn(4, 3)).sum().backward()
    container.step()
    container.zero_grad()
    return model, container


def main() -> int:
    _, source = make(0)
    saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in source.state_dict().items()}
    model, target = make(1)
    target.load_state_dict(saved)
    before = {k: v.clone() for k, v in target.optimizers[0].state[model.weight].items()}
    for key, value in saved.items():
        if key.startswith("state.") and isinstance(value, torch.Tensor):
            value.add_(1)  # the caller reuses its dict
    after = target.optimizers[0].state[model.weight]
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    print(f"optimizer state entries changed by mutating the loaded dict: {changed}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
