"""FQN keying: which fully qualified name stands for each optimizer parameter.

The canonical OSD keys state by the parameter's FQN in the user's module (not
the wrapper's: no ``module.`` from DDP).  A parameter reachable under several
names (tied weights) is keyed by the first name in registration order, the
name ``named_parameters()`` yields it under.  torch's
``get_optimizer_state_dict`` keys it the same way and
``set_optimizer_state_dict`` takes that key back (checked on 2.13: nested and
flattened in one process, nested under FSDP2 at world 2), so the suites'
fidelity check holds for tied models.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

#: One optimizer, or several over disjoint parameters (their OSDs are merged:
#: state keyed by FQN, param_groups concatenated in optimizer order).
Optimizers = Union[torch.optim.Optimizer, Sequence[torch.optim.Optimizer]]


def as_optimizers(optimizers: Optimizers) -> tuple[torch.optim.Optimizer, ...]:
    if isinstance(optimizers, torch.optim.Optimizer):
        return (optimizers,)
    return tuple(optimizers)


def param_groups_of(optimizers: Optimizers) -> list[dict]:
    """The param groups of all `optimizers`, in optimizer order."""
    return [g for opt in as_optimizers(optimizers) for g in opt.param_groups]


def param_fqns(module: nn.Module) -> dict[int, str]:
    """Map ``id(param)`` to its canonical FQN."""
    fqns: dict[int, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        fqns.setdefault(id(param), name)
    return fqns


def group_layout(module: nn.Module, optimizers: Optimizers) -> list[list[str]]:
    """The FQNs of each param group of `optimizers`, in group order."""
    fqns = param_fqns(module)
    layout = []
    for i, group in enumerate(param_groups_of(optimizers)):
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
