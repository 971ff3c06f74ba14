"""ZeroRedundancyOptimizer: whole state from the ranks' partitions, and back.

ZeRO's ``param_groups`` hold every parameter with the group's hyperparameters;
its local optimizer (``optim``) steps only this rank's partition and holds
only its state.  The reference does not ask ZeRO which rank owns what: every
rank tells the others which parameters it holds state for (and that state),
and a parameter with state on two ranks is an error.  Loading gives each
rank's local optimizer the state of the parameters it steps, and both levels
of param_groups the saved hyperparameters.
"""

from __future__ import annotations

from typing import Any

import torch

from ._dtypes import restore_dtypes
from ._wire import all_gather_objects


def is_zero(optimizer: torch.optim.Optimizer) -> bool:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return isinstance(optimizer, ZeroRedundancyOptimizer)


def local_state(optimizer: torch.optim.Optimizer) -> dict:
    """Param -> state this rank holds (ZeRO: its local optimizer's)."""
    return optimizer.optim.state if is_zero(optimizer) else optimizer.state


def hyperparameters(optimizer: torch.optim.Optimizer, index: int) -> dict[str, Any]:
    """The hyperparameters in effect for group `index` of `optimizer` (without ``params``).

    ZeRO's own group holds what its constructor or ``add_param_group`` was
    given; its local optimizer's group of the same index holds that with the
    wrapped class's defaults filled in, which are what it steps with.  ZeRO
    copies them into its own group only at the next step, so a group added
    since has none of them there yet (Adam's ``betas``, ``eps``, ...).
    """
    group = {k: v for k, v in optimizer.param_groups[index].items() if k != "params"}
    if not is_zero(optimizer):
        return group
    local = optimizer.optim.param_groups[index]
    return {**group, **{k: v for k, v in local.items() if k != "params" and k not in group}}


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def gather_state(optimizer: torch.optim.Optimizer) -> dict[torch.Tensor, dict[str, Any]]:
    """Param -> state over all ranks of a ZeRO optimizer.  Collective over its process group."""
    params = _params(optimizer)
    owned = optimizer.optim.state
    mine = {
        i: {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v for k, v in owned[p].items()}
        for i, p in enumerate(params)
        if owned.get(p)
    }
    merged: dict[int, dict] = {}
    owner: dict[int, int] = {}
    for rank, part in enumerate(all_gather_objects(mine, optimizer.process_group)):
        for i, state in part.items():
            if i in owner:
                raise ValueError(f"ZeRO parameter {i} has state on ranks {owner[i]} and {rank}")
            owner[i] = rank
            merged[i] = state
    return {
        params[i]: {k: v.to(params[i].device) if isinstance(v, torch.Tensor) else v for k, v in state.items()}
        for i, state in merged.items()
    }


def load(optimizer: torch.optim.Optimizer, groups: list[dict], state: dict[torch.Tensor, dict]) -> None:
    """Load hyperparameters ``groups`` (one per param group, without params) and per-param `state`."""
    local = optimizer.optim
    if len(local.param_groups) != len(groups):
        raise ValueError(f"ZeRO's local optimizer has {len(local.param_groups)} groups, expected {len(groups)}")
    index = {id(p): i for i, p in enumerate(p for g in local.param_groups for p in g["params"])}
    local.load_state_dict(
        {
            "state": {index[id(p)]: s for p, s in state.items() if id(p) in index},
            "param_groups": [
                {**hp, "params": [index[id(p)] for p in g["params"]]} for hp, g in zip(groups, local.param_groups)
            ],
        }
    )
    restore_dtypes(local, state)
    for hp, g in zip(groups, optimizer.param_groups):
        params = g["params"]
        g.clear()
        g.update(hp)
        g["params"] = params
