"""Chunk arithmetic: how a dim of size ``n`` is split over ``k`` ranks.

DTensor's ``Shard(dim)`` and FSDP2 split like ``torch.chunk``: every chunk but
the tail has ``ceil(n / k)`` elements, and when ``n`` is small the trailing
ranks get empty chunks (e.g. 5 over 4 -> 2, 2, 1, 0).  This module states that
rule on its own, in plain integers, so the reference does not borrow it from
torch.
"""

from __future__ import annotations


def chunk_sizes(n: int, k: int) -> list[int]:
    """Sizes of the ``k`` chunks of a dim of size ``n``."""
    if k < 1:
        raise ValueError(f"cannot split over {k} ranks")
    if n < 0:
        raise ValueError(f"negative size {n}")
    full = -(-n // k)  # ceil(n / k); 0 when n == 0
    return [max(0, min(full, n - i * full)) for i in range(k)]


def chunk_offsets(n: int, k: int) -> list[int]:
    """Start index of each of the ``k`` chunks of a dim of size ``n``."""
    if k < 1:
        raise ValueError(f"cannot split over {k} ranks")
    full = -(-n // k)
    return [min(n, i * full) for i in range(k)]


def chunk_bounds(n: int, k: int, index: int) -> tuple[int, int]:
    """``(offset, size)`` of chunk ``index``."""
    return chunk_offsets(n, k)[index], chunk_sizes(n, k)[index]
