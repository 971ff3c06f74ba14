"""Flatten / unflatten in torch's flat key format.

The flat form of a canonical OSD (what ``StateDictOptions(
flatten_optimizer_state_dict=True)`` documents) has one key per leaf:

* ``state.<fqn>.<name>`` for each state value (a nested dict's keys are joined
  with ``.``: ``state.<fqn>.<name>.<inner>``);
* ``param_groups.<fqn>.<hyperparameter>`` for every parameter of a group, so a
  group's hyperparameters appear once per parameter.

FQNs contain dots, so reading a key back needs the set of FQNs: `unflatten`
takes the optimizer's group layout (FQNs per group) and matches each key to the
longest FQN it starts with.  What the flat form cannot hold: the hyperparameters
of an empty group (it has no FQN to carry them); `unflatten` gives such a group
``{"params": []}``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..compare import first_difference
from ._gather import PARAM_GROUPS, PARAMS, STATE


def flatten(osd: dict) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for fqn, values in osd[STATE].items():
        _flatten_into(flat, f"{STATE}.{fqn}", values)
    for group in osd[PARAM_GROUPS]:
        for fqn in group[PARAMS]:
            for k, v in group.items():
                if k != PARAMS:
                    flat[f"{PARAM_GROUPS}.{fqn}.{k}"] = v
    return flat


def _flatten_into(flat: dict[str, Any], prefix: str, values: dict) -> None:
    for k, v in values.items():
        if isinstance(v, dict):
            _flatten_into(flat, f"{prefix}.{k}", v)
        else:
            flat[f"{prefix}.{k}"] = v


class FlatKeyError(KeyError):
    """A flat key names no known parameter, or a group's entries disagree."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def unflatten(flat: dict[str, Any], layout: Sequence[Sequence[str]]) -> dict:
    """Invert `flatten`, given the FQNs of each param group in order."""
    fqns = [fqn for group in layout for fqn in group]
    state: dict[str, dict[str, Any]] = {}
    group_hp: dict[str, dict[str, Any]] = {fqn: {} for fqn in fqns}
    known = frozenset(fqns)
    for key, value in flat.items():
        section, _, rest = key.partition(".")
        if section not in (STATE, PARAM_GROUPS):
            raise FlatKeyError(f"flat key {key!r} is neither state.* nor param_groups.*")
        fqn = _longest_prefix(rest, known)
        if fqn is None:
            raise FlatKeyError(f"flat key {key!r} names no parameter of the optimizer")
        name = rest[len(fqn) + 1 :]
        if section == STATE:
            _nest(state.setdefault(fqn, {}), name.split("."), value)
        else:
            group_hp[fqn][name] = value
    groups = []
    for g, members in enumerate(layout):
        hp: dict[str, Any] | None = None
        for fqn in members:
            if hp is None:
                hp = group_hp[fqn]
            elif not _same_hparams(group_hp[fqn], hp):
                raise FlatKeyError(
                    f"param_groups.{fqn}.* differs from param_groups.{members[0]}.* "
                    f"though both are in group {g}"
                )
        groups.append({**(hp or {}), PARAMS: list(members)})
    return {STATE: state, PARAM_GROUPS: groups}


def _longest_prefix(rest: str, fqns: frozenset[str]) -> str | None:
    """The longest FQN of `fqns` that `rest` starts with, followed by a dot.

    Tries `rest`'s own dotted prefixes, longest first, against the set: a key
    costs its number of dots, not the number of parameters (a scan of every
    FQN per key made `unflatten` quadratic; bench/bench_growth.py)."""
    end = len(rest)
    while (end := rest.rfind(".", 0, end)) > 0:
        if rest[:end] in fqns:
            return rest[:end]
    return None


def _nest(target: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _same_hparams(a: dict, b: dict) -> bool:
    # Strict, NaN-aware equality (a NaN hyperparameter equals itself here).  Most
    # groups hold plain numbers and tuples: compare those directly (a group of
    # many parameters is checked once per parameter), the rest with `first_difference`.
    if a.keys() == b.keys() and all(_plainly_equal(a[k], b[k]) for k in a):
        return True
    return first_difference(a, b) is None


def _plainly_equal(x: Any, y: Any) -> bool:
    """Equal by value and type, for bools, ints, strings, None, non-NaN floats of one
    sign and tuples/lists of those; False for anything else (tensors, NaN), which
    `first_difference` then judges."""
    if type(x) is not type(y):
        return False
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(_plainly_equal(u, v) for u, v in zip(x, y))
    if isinstance(x, float):
        return x == y and math.copysign(1.0, x) == math.copysign(1.0, y)
    return isinstance(x, (bool, int, str, type(None))) and x == y
