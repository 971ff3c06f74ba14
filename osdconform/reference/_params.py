"""Whole parameters, for properties that compare models (resume) and check atomicity.

Parameters are keyed by canonical FQN (`param_fqns`) and made whole the same
way as optimizer state (`_gather._full_value`), with the reference's own
collectives.  Collective: every rank must call it.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _fsdp1
from ._dtensor import shard_like
from ._fqn import param_fqns
from ._gather import _copy_value, _full_value


def full_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """FQN -> whole parameter value (a detached copy), in registration order.

    Under FSDP1 each rank holds a flat piece of each parameter: the pieces are
    gathered and shaped as the user's parameter, as its optimizer state is.
    """
    names = param_fqns(module)
    params: dict[str, torch.Tensor] = {}
    for param in module.parameters():
        params.setdefault(names[id(param)], param)
    shapes = _fsdp1.full_shapes(module)
    if shapes is not None:
        whole = _fsdp1.gather_states([(f, p, {"value": p.detach()}) for f, p in params.items()], shapes)
        return {f: whole[f]["value"] for f in params}
    return {f: _full_value(p.detach()) for f, p in params.items()}


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


@torch.no_grad()
def load_full_params(module: nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Set every parameter of `module` from its whole value in `full` (by FQN), under
    any plan: each rank takes its piece, cut as the reference cuts optimizer state
    (a DTensor's local shard, an FSDP1 rank's piece).  Local: no collectives.

    For properties that restore a model saved under another plan or world size
    (the lifecycle's reshard); model state is not the backend's job.
    """
    from torch.distributed.tensor import DTensor

    names = param_fqns(module)
    params: dict[str, torch.Tensor] = {}
    for p in module.parameters():
        params.setdefault(names[id(p)], p)
    missing = sorted(set(params) - set(full))
    if missing:
        raise KeyError(f"no saved value for parameters {missing}")
    shapes = _fsdp1.full_shapes(module)
    pieces = _fsdp1.piece_layouts(params.items(), shapes) if shapes is not None else {}
    for fqn, param in params.items():
        value = full[fqn].to(dtype=param.dtype, device=param.device)
        if isinstance(param, DTensor):
            param.copy_(shard_like(value, param))
        elif fqn in pieces:
            param.copy_(_fsdp1.cut_piece(value, param, pieces[fqn], f"params[{fqn!r}]"))
        else:
            param.copy_(value)
