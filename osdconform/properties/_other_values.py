"""Targets hold other values: what a load must restore is set to something else first.

Every property loads into fresh objects built from the same scenario as the
source, so before this step the target already held the source's
hyperparameters: a checkpointer that never saved a group's ``initial_lr``, its
custom keys or its ``betas``, and let the target keep its own, passed every
suite (issue 18, item 4).  So the target's param-group values are moved away
from the scenario's before the load: every value a load does not restore then
shows as a difference from the source.

The new values must stay valid for a step, and of the same type: torch's own
``set_optimizer_state_dict`` steps the target once (lr 0) before it loads, so
a value no optimizer accepts would fail a correct backend.  Numbers are halved
(a zero becomes 1/32, but a zero ``momentum`` stays: it decides which state a
group keeps), ints grow by one, tensors keep their dtype and device,
tuples change element-wise, ``maximize`` flips, and a string takes another
value the optimizer accepts (or, for a custom key, a suffix).  Flags that pick
an implementation (``foreach``, ``fused``, ``capturable``, ``differentiable``)
and ``None`` stay as built: they choose how a step runs, not what it computes,
and some are refused on some devices.  The target's schedulers keep their own
state: the user restores a scheduler by its ``state_dict``, not the backend.
"""

from __future__ import annotations

from typing import Any

import torch

#: Group keys left as built (see the module docstring).
KEPT = frozenset({"params", "param_names", "foreach", "fused", "capturable", "differentiable"})

#: Keys whose zero decides which state entries a group keeps (SGD and RMSprop
#: keep a ``momentum_buffer`` only with a momentum): a zero stays zero, so the
#: target keeps the source's kind of state, as ``amsgrad`` and ``centered``
#: stay as built.  A non-zero value still moves (and stays non-zero).
STRUCTURAL_ZERO = frozenset({"momentum"})

#: Strings an optimizer reads, each with another value it accepts.
_OTHER_STRINGS = {
    "original": "match_rms_adamw",  # Muon's adjust_lr_fn
    "match_rms_adamw": "original",
}

#: Keys whose ``None`` has a valid alternative.
_OTHER_FOR_NONE = {"line_search_fn": "strong_wolfe"}  # LBFGS

#: String keys that may also be ``None``.
_MAY_BE_NONE = {"line_search_fn"}

#: What a zero becomes.
ZERO_TO = 0.03125


def other_value(key: str, value: Any) -> Any:
    """A value of the same kind as `value`, valid where it is, and different from it."""
    if key in STRUCTURAL_ZERO and not value:
        return value
    if isinstance(value, bool):
        return not value if key == "maximize" else value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else ZERO_TO
    if isinstance(value, torch.Tensor):
        with torch.no_grad():
            other = value.detach().clone()
            return other.fill_(ZERO_TO) if not other.any() else other.div_(2)
    if isinstance(value, tuple):
        return tuple(other_value(key, v) for v in value)
    if isinstance(value, str):
        if key in _MAY_BE_NONE:
            return None
        return _OTHER_STRINGS.get(value, value + "-target")
    if value is None:
        return _OTHER_FOR_NONE.get(key)
    return value


#: Keys whose zero stays zero in a group holding a parameter with sparse
#: gradients (a sparse ``nn.Embedding``'s weight): torch.optim refuses weight
#: decay on sparse gradients (SGD: "add(sparse, dense) is not supported";
#: Adagrad: "weight_decay option is not compatible with sparse gradients").
STRUCTURAL_ZERO_SPARSE = frozenset({"weight_decay"})


def sparse_params(module: Any) -> set[int]:
    """The ids of `module`'s parameters that get sparse gradients."""
    return {
        id(m.weight) for m in module.modules()
        if isinstance(m, torch.nn.Embedding) and m.sparse
    }


def give_other_values(optimizers, module: Any = None) -> None:
    """Move every restorable value of every param group of `optimizers` off the scenario's
    (`module`: the model, whose sparse-gradient parameters keep a group's weight decay off)."""
    sparse = sparse_params(module) if module is not None else set()
    for opt in optimizers:
        for group in opt.param_groups:
            keep_zero = STRUCTURAL_ZERO_SPARSE if any(id(p) in sparse for p in group["params"]) else ()
            for key in list(group):
                if key in KEPT or (key in keep_zero and not group[key]):
                    continue
                group[key] = other_value(key, group[key])
