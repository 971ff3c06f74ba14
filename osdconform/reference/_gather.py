"""Gather: a rank's live optimizer state -> the canonical OSD.

The canonical full OSD is::

    {"state": {fqn: {name: value}},
     "param_groups": [{hyperparameter: value, ..., "params": [fqn, ...]}]}

with every tensor whole.  The sharded form is the same dict with the values
this rank holds (DTensors stay DTensors).  Both are deep copies: nothing in
them aliases the optimizer, so later steps cannot change them.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from ._dtensor import unshard
from ._fqn import Optimizers, as_optimizers, group_layout

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
    if isinstance(value, DTensor):
        return unshard(value)
    if isinstance(value, dict):
        return {k: _full_value(v) for k, v in value.items()}
    return _copy_value(value)


def _osd(module: nn.Module, optimizers: Optimizers, convert: Callable[[Any], Any]) -> dict:
    optimizers = as_optimizers(optimizers)
    layout = iter(group_layout(module, optimizers))
    state: dict[str, dict[str, Any]] = {}
    groups: list[dict[str, Any]] = []
    for optimizer, group in ((o, g) for o in optimizers for g in o.param_groups):
        fqns = next(layout)
        hp = {k: _copy_value(v) for k, v in group.items() if k != PARAMS}
        groups.append({**hp, PARAMS: list(fqns)})
        for param, fqn in zip(group[PARAMS], fqns):
            # Every rank walks the same params in the same order, so the
            # collectives inside `convert` line up across ranks.
            param_state = optimizer.state.get(param)
            if param_state:
                state[fqn] = {k: convert(v) for k, v in param_state.items()}
    return {STATE: state, PARAM_GROUPS: groups}


def full_osd(module: nn.Module, optimizers: Optimizers) -> dict:
    """The canonical full OSD of `optimizers` (one, or several merged), on every rank.  Collective."""
    return _osd(module, optimizers, _full_value)


def sharded_osd(module: nn.Module, optimizers: Optimizers) -> dict:
    """The canonical OSD with this rank's local values (DTensors kept).  Local."""
    return _osd(module, optimizers, _copy_value)
