"""Gather: a rank's live optimizer state -> the canonical OSD.

The canonical full OSD is::

    {"state": {fqn: {name: value}},
     "param_groups": [{hyperparameter: value, ..., "params": [fqn, ...]}]}

with every tensor whole.  The sharded form is the same dict with the values
this rank holds (DTensors stay DTensors).  Both are deep copies: nothing in
them aliases the optimizer, so later steps cannot change them.

Where a rank's state lives depends on the plan, and each layout has its own
small module: DTensor shards (`_dtensor`), FSDP1's 1-D pieces of the
original parameters (`_fsdp1`), ZeRO's per-rank partitions (`_zero`), and
ShardedTensor values such as FSDP1's sharded state dict (`_sharded_tensor`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from . import _fsdp1, _zero
from ._dtensor import unshard
from ._fqn import Optimizers, as_optimizers, group_layout
from ._sharded_tensor import is_sharded_tensor, unshard_sharded_tensor

STATE = "state"
PARAM_GROUPS = "param_groups"
PARAMS = "params"


def _copy_value(value: Any) -> Any:
    if isinstance(value, DTensor):
        return DTensor.from_local(
            value.to_local().detach().clone(),
            value.device_mesh,
            value.placements,
            run_check=False,
            shape=value.shape,
            stride=value.stride(),
        )
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _copy_value(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _full_value(value: Any) -> Any:
    if is_sharded_tensor(value):
        return unshard_sharded_tensor(value)
    if isinstance(value, DTensor):
        return unshard(value)
    if isinstance(value, dict):
        return {k: _full_value(v) for k, v in value.items()}
    return _copy_value(value)


def _osd(module: nn.Module, optimizers: Optimizers, full: bool) -> dict:
    optimizers = as_optimizers(optimizers)
    layout = iter(group_layout(module, optimizers))
    groups: list[dict[str, Any]] = []
    # (fqn, param, this rank's state or None), in the same order on every rank,
    # so the collectives of the full gather line up across ranks.
    entries: list[tuple[str, torch.Tensor, dict | None]] = []
    for optimizer in optimizers:
        if full and _zero.is_zero(optimizer):
            states = _zero.gather_state(optimizer)
        else:
            states = _zero.local_state(optimizer)
        for g, group in enumerate(optimizer.param_groups):
            fqns = next(layout)
            hp = {k: _copy_value(v) for k, v in _zero.hyperparameters(optimizer, g).items()}
            groups.append({**hp, PARAMS: list(fqns)})
            entries += [(fqn, p, states.get(p) or None) for p, fqn in zip(group[PARAMS], fqns)]
    shapes = _fsdp1.full_shapes(module)
    if full and shapes is not None:
        state = _fsdp1.gather_states(entries, shapes)
    elif shapes is not None:
        # FSDP1: a rank with an empty piece of a parameter holds none of its
        # state, whatever its optimizer keeps there (see `_fsdp1`).
        state = {
            fqn: {k: _copy_value(v) for k, v in s.items()}
            for fqn, p, s in entries
            if s and not _fsdp1.holds_nothing(p, shapes[fqn])
        }
    else:
        convert = _full_value if full else _copy_value
        state = {fqn: {k: convert(v) for k, v in s.items()} for fqn, _, s in entries if s}
    return {STATE: state, PARAM_GROUPS: groups}


def full_osd(module: nn.Module, optimizers: Optimizers) -> dict:
    """The canonical full OSD of `optimizers` (one, or several merged), on every rank.  Collective."""
    return _osd(module, optimizers, full=True)


def sharded_osd(module: nn.Module, optimizers: Optimizers) -> dict:
    """The canonical OSD with this rank's local values (DTensors kept).  Local.

    Under FSDP1 it leaves out the state a rank keeps for a parameter it holds
    no element of (the constructor's, never stepped; see `_fsdp1`).
    """
    return _osd(module, optimizers, full=False)
