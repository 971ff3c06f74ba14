"""Moving tensors between ranks exactly: variable-size all-gather over a process group.

Tensors travel as same-width integers (see `_dtensor._to_wire`), so every
backend moves them bit for bit; pieces of different sizes are padded to the
largest and cut back on arrival.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist

from ._dtensor import _from_wire, _to_wire


def all_gather_objects(obj: Any, group: dist.ProcessGroup | None = None) -> list[Any]:
    """Every rank's `obj`, in rank order (pickled; tensors arrive bit for bit)."""
    out: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def all_gather_flat(flat: torch.Tensor, sizes: Sequence[int], group: dist.ProcessGroup | None = None) -> list[torch.Tensor]:
    """Every rank's 1-D `flat` (rank ``r`` holds ``sizes[r]`` elements), in rank order."""
    if flat.dim() != 1:
        raise ValueError(f"expected a 1-D piece, got shape {tuple(flat.shape)}")
    longest = max(sizes, default=0)
    padded = flat.new_zeros(longest)
    padded[: flat.numel()].copy_(flat)
    wire = _to_wire(padded)
    bufs = [torch.empty_like(wire) for _ in sizes]
    dist.all_gather(bufs, wire, group=group)
    return [_from_wire(b, flat.dtype)[:n] for b, n in zip(bufs, sizes)]
