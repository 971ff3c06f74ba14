"""What the faults of the corpus share: reading and editing OSDs and live param groups.

A fault is a real backend with one bug put back in; these helpers keep each
fault's own code to the bug.  They work on the nested form (``state`` keyed by
FQN, ``param_groups`` naming FQNs); a fault of the nested form leaves a flat
OSD alone.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from osdconform import reference as ref


def nested(osd: Any) -> bool:
    """Whether `osd` is in the nested form (not flat, not a rank's empty dict)."""
    return isinstance(osd, dict) and ref.STATE in osd and ref.PARAM_GROUPS in osd


def map_entries(osd: dict, fn: Callable[[str, dict], dict | None]) -> dict:
    """A copy of nested `osd` whose state entry of each FQN is ``fn(fqn, entry)`` (None drops it)."""
    state = {}
    for fqn, entry in osd[ref.STATE].items():
        new = fn(fqn, dict(entry))
        if new is not None:
            state[fqn] = new
    return {**osd, ref.STATE: state}


def groups(workload) -> list[dict]:
    """Every live param group of the workload's optimizers, in OSD order."""
    return [g for opt in workload.optimizers for g in opt.param_groups]


def fqn_of(workload) -> dict[int, str]:
    """``id(parameter) -> canonical FQN``."""
    return ref.param_fqns(workload.module)


def live_entries(workload) -> Iterable[tuple[str, dict]]:
    """(FQN, live state entry) of every parameter with state on this rank."""
    names = fqn_of(workload)
    for opt in workload.optimizers:
        for p, entry in ref.local_state(opt).items():  # ZeRO: its local optimizer's
            yield names.get(id(p), "?"), entry


def keep_target_keys(workload, load: Callable[[], None], keep: Callable[[str, Any], bool]) -> None:
    """Run `load`, then put back the target's own value of every group key `keep` selects."""
    before = [dict(g) for g in groups(workload)]
    load()
    for group, old in zip(groups(workload), before):
        for key, value in old.items():
            if key != "params" and keep(key, value):
                group[key] = value


def local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard, or the tensor."""
    return t.to_local() if hasattr(t, "to_local") else t
