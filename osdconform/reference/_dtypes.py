"""Give a loaded optimizer back the state dtypes it was given.

``Optimizer.load_state_dict`` casts every floating state tensor except
``step`` to its parameter's dtype, assuming the two always match
(pytorch/pytorch#75224).  They do not: NAdam keeps ``mu_product`` and ASGD
``eta``/``mu`` in the default float dtype whatever the parameter's (and LBFGS
its flat history in the dtype of all its parameters, which may differ from
the first's), so after a
plain load a bf16 or fp64 model's optimizer continues from cast values and its
resumed run leaves the uninterrupted one.  The reference is the oracle of a
correct checkpointer, so it loads through the public API and then puts back
the values it was handed, in their own dtype.
"""

from __future__ import annotations

import torch


def restore_dtypes(optimizer: torch.optim.Optimizer, given: dict[torch.Tensor, dict]) -> None:
    """After ``optimizer.load_state_dict``: undo its dtype casts of the `given` per-param state."""
    for param, entries in given.items():
        loaded = optimizer.state.get(param, {})
        for key, value in entries.items():
            if key in loaded:
                loaded[key] = _restored(value, loaded[key])


def _restored(value, now):
    """`now` (what the load made of `value`) with `value`'s dtypes.

    Lists too: LBFGS keeps its history as lists of flat tensors over all its
    parameters, in their common dtype, but keys them by the first parameter,
    whose dtype the load casts them to.
    """
    if isinstance(value, torch.Tensor) and isinstance(now, torch.Tensor) and now.dtype != value.dtype:
        return value.detach().clone().to(device=now.device)
    if isinstance(value, (list, tuple)) and isinstance(now, (list, tuple)) and len(value) == len(now):
        return type(now)(_restored(v, n) for v, n in zip(value, now))
    return now
