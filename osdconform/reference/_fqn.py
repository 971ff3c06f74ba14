"""FQN keying: which fully qualified name stands for each optimizer parameter.

The canonical OSD keys state by the parameter's FQN in the user's module (not
the wrapper's: no ``module.`` from DDP).  A parameter reachable under several
names (tied weights) is keyed by the first name in registration order, the
name ``named_parameters()`` yields it under.  torch's
``get_optimizer_state_dict`` keys it the same way and
``set_optimizer_state_dict`` takes that key back (checked on 2.13: nested and
flattened in one process, nested under FSDP2 at world 2), so the suites'
fidelity check holds for tied models.

Wrappers put the module they wrap under a name of their own: FSDP1 under
``_fsdp_wrapped_module``, activation checkpointing's ``checkpoint_wrapper``
under ``_checkpoint_wrapped_module``, ``torch.compile``'s ``OptimizedModule``
under ``_orig_mod``.  Those segments are not part of the user's name and are
dropped, wherever and however nested (a compiled model whose blocks are
checkpoint-wrapped and FSDP1-wrapped); torch's state-dict APIs drop the same
three.  Without ``use_orig_params`` FSDP1 hands the
optimizer only its flat parameters (``_flat_param``), which hold several
original parameters each; which ones, and where, only FSDP's internals know,
so the reference refuses to key them rather than guess.
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


#: The name segments wrappers insert for the module they wrap (FSDP1, activation
#: checkpointing, torch.compile): none is part of the user's name.
WRAPPER_SEGMENTS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})
#: The name FSDP1 registers its flat parameters under (use_orig_params=False).
FSDP1_FLAT_PARAM = "_flat_param"


class FlatParameterError(NotImplementedError):
    """The optimizer holds FSDP1 flat parameters, which the reference cannot key by FQN."""


def user_fqn(name: str) -> str:
    """`name` as the user's module names it (the wrappers' segments removed)."""
    return ".".join(part for part in name.split(".") if part not in WRAPPER_SEGMENTS)


def param_fqns(module: nn.Module) -> dict[int, str]:
    """Map ``id(param)`` to its canonical FQN."""
    fqns: dict[int, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        fqns.setdefault(id(param), user_fqn(name))
    return fqns


def group_layout(module: nn.Module, optimizers: Optimizers) -> list[list[str]]:
    """The FQNs of each param group of `optimizers`, in group order."""
    fqns = param_fqns(module)
    layout = []
    for i, group in enumerate(param_groups_of(optimizers)):
        names = []
        for param in group["params"]:
            if fqns.get(id(param), "").rpartition(".")[2] == FSDP1_FLAT_PARAM:
                raise FlatParameterError(
                    f"param group {i} holds the FSDP1 flat parameter {fqns[id(param)]!r} "
                    "(use_orig_params=False): which original parameters it holds, and at which "
                    "offsets, is known only to FSDP's internals, so the reference cannot key "
                    "its optimizer state by FQN"
                )
            if id(param) not in fqns:
                raise KeyError(
                    f"param group {i} holds a parameter of shape {tuple(param.shape)} "
                    "that is not a parameter of the module"
                )
            names.append(fqns[id(param)])
        layout.append(names)
    return layout
