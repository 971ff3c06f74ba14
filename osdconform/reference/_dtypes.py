"""Give a loaded optimizer back the state dtypes it was given.

``Optimizer.load_state_dict`` casts every floating state tensor except
``step`` to its parameter's dtype, assuming the two always match
(pytorch/pytorch#75224).  They do not: NAdam keeps ``mu_product`` and ASGD
``eta``/``mu`` in the default float dtype whatever the parameter's, so after a
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
            now = loaded.get(key)
            if isinstance(value, torch.Tensor) and isinstance(now, torch.Tensor) and now.dtype != value.dtype:
                loaded[key] = value.detach().clone().to(device=now.device)
