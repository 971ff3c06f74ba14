"""Native (index-keyed) optimizer state dicts <-> the canonical FQN-keyed form.

``optimizer.state_dict()`` keys state by the index of each parameter in
param-group order; backends built on it (``zero``) convert at their boundary
so the suites can compare them with everything else.  Written here, not taken
from the reference, so that a bug in one cannot hide a bug in the other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _names(module: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), name)
    return names


def to_canonical(native: dict[str, Any], module: nn.Module, param_groups: list[dict]) -> dict[str, Any]:
    """`native` (from a ``state_dict()``) keyed by the FQNs of the live `param_groups`' params."""
    names = _names(module)
    order = [names[id(p)] for g in param_groups for p in g["params"]]
    groups = []
    for saved in native["param_groups"]:
        groups.append({**{k: v for k, v in saved.items() if k != "params"},
                       "params": [order[i] for i in saved["params"]]})
    return {"state": {order[i]: st for i, st in native["state"].items()}, "param_groups": groups}


def to_native(osd: dict[str, Any], module: nn.Module, param_groups: list[dict]) -> dict[str, Any]:
    """The canonical `osd` keyed by index in the live `param_groups`' order, for ``load_state_dict``."""
    names = _names(module)
    index = {names[id(p)]: i for i, p in enumerate(p for g in param_groups for p in g["params"])}
    unknown = sorted(set(osd["state"]) - set(index))
    if unknown:
        raise KeyError(f"state names parameters the optimizer does not hold: {unknown}")
    groups = [{**{k: v for k, v in g.items() if k != "params"},
               "params": [index[f] for f in g["params"]]} for g in osd["param_groups"]]
    return {"state": {index[f]: st for f, st in osd["state"].items()}, "param_groups": groups}


def tensors_to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: tensors_to(v, device) for k, v in value.items()}
    return value
