"""Whole parameters, for properties that compare models (resume) and check atomicity.

Parameters are keyed by canonical FQN (`param_fqns`) and made whole the same
way as optimizer state (`_gather._full_value`), with the reference's own
collectives.  Collective: every rank must call it.
"""

from __future__ import annotations

import torch
from torch import nn

from ._fqn import param_fqns
from ._gather import _copy_value, _full_value


def full_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """FQN -> whole parameter value (a detached copy), in registration order."""
    names = param_fqns(module)
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for param in module.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        out[names[id(param)]] = _full_value(param.detach())
    return out


def local_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """FQN -> this rank's parameter value (a detached copy; DTensors kept).  Local."""
    names = param_fqns(module)
    return {names[id(p)]: _copy_value(p.detach()) for p in module.parameters()}


@torch.no_grad()
def copy_params(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter of `src` into `dst` (same model, same plan).  Local."""
    src_names = param_fqns(src)
    src_params = {src_names[id(p)]: p for p in src.parameters()}
    dst_names = param_fqns(dst)
    for p in dst.parameters():
        p.copy_(src_params[dst_names[id(p)]])
