"""Native (index-keyed) optimizer state dicts <-> the canonical FQN-keyed form.

``optimizer.state_dict()`` keys state by the index of each parameter in
param-group order; backends built on it (``zero``) convert at their boundary
so the suites can compare them with everything else.  Third-party adapters
get `to_canonical`, `to_native` and `split_osd` from `osdconform.backends`
(the public names; this module is their implementation).  Written here, not taken
from the reference, so that a bug in one cannot hide a bug in the other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: What FSDP1, checkpoint_wrapper and torch.compile name the module they wrap
#: (kept apart from the reference's list on purpose, as the module doc says).
_WRAPPER_SEGMENTS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})


def _names(module: nn.Module) -> dict[int, str]:
    """Each parameter's FQN in the user's model (the canonical key): the name
    ``named_parameters()`` yields, less the segments that checkpoint wrappers,
    ``torch.compile`` and FSDP1 insert."""
    names: dict[int, str] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), ".".join(s for s in name.split(".") if s not in _WRAPPER_SEGMENTS))
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
    # Names exist only on this side of the conversion: check the groups here,
    # so an error can say which parameter (torch's index check cannot).
    if len(osd["param_groups"]) != len(param_groups):
        raise ValueError(f"the OSD has {len(osd['param_groups'])} param group(s), the optimizer {len(param_groups)}")
    for g, (saved, live) in enumerate(zip(osd["param_groups"], param_groups)):
        expected = {names[id(p)] for p in live["params"]}
        missing, extra = sorted(expected - set(saved["params"])), sorted(set(saved["params"]) - expected)
        if missing or extra:
            raise KeyError(f"param_groups[{g}] names other parameters than the optimizer's: missing {missing}, unexpected {extra}")
    # torch matches saved ids to live params by position: list them in the live order.
    groups = [{**{k: v for k, v in g.items() if k != "params"},
               "params": [index[names[id(p)]] for p in live["params"]]}
              for g, live in zip(osd["param_groups"], param_groups)]
    return {"state": {index[f]: st for f, st in osd["state"].items()}, "param_groups": groups}


def split_osd(osd: dict[str, Any], group_counts: list[int]) -> list[dict[str, Any]]:
    """The canonical `osd` of several optimizers cut into one OSD per optimizer.

    ``group_counts[i]`` is how many param groups optimizer ``i`` has; each
    part gets those groups and the state of their parameters.  State for a
    parameter no group names goes to the first part, so that the API loading
    it sees it (and should refuse it) rather than this adapter dropping it.
    """
    parts, first = [], 0
    claimed: set[str] = set()
    for n in group_counts:
        groups = osd["param_groups"][first:first + n]
        fqns = {f for g in groups for f in g["params"]}
        claimed |= fqns
        parts.append({"state": {f: st for f, st in osd["state"].items() if f in fqns}, "param_groups": groups})
        first += n
    if parts:
        parts[0]["state"].update({f: st for f, st in osd["state"].items() if f not in claimed})
    return parts


def tensors_to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: tensors_to(v, device) for k, v in value.items()}
    return value
