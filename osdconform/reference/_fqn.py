"""FQN keying: which fully qualified name stands for each optimizer parameter.

The canonical OSD keys state by the parameter's FQN in the user's module (not
the wrapper's: no ``module.`` from DDP).  A parameter reachable under several
names (tied weights) is keyed by the first name in registration order.
"""

from __future__ import annotations

import torch
from torch import nn


def param_fqns(module: nn.Module) -> dict[int, str]:
    """Map ``id(param)`` to its canonical FQN."""
    fqns: dict[int, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        fqns.setdefault(id(param), name)
    return fqns


def group_layout(module: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    """The FQNs of each param group of `optimizer`, in group order."""
    fqns = param_fqns(module)
    layout = []
    for i, group in enumerate(optimizer.param_groups):
        names = []
        for param in group["params"]:
            if id(param) not in fqns:
                raise KeyError(
                    f"param group {i} holds a parameter of shape {tuple(param.shape)} "
                    "that is not a parameter of the module"
                )
            names.append(fqns[id(param)])
        layout.append(names)
    return layout
