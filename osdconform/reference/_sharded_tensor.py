"""ShardedTensor (FSDP1's SHARDED_STATE_DICT values) -> the whole tensor, with own collectives.

Each rank holds some shards, each with its offsets and sizes in the global
tensor.  Every rank tells the others where its shards sit, sends their
elements (one variable-size all-gather), and every rank writes each shard
into the whole tensor at its offsets.  Shards held by several ranks (the
replica groups of HYBRID_SHARD) are written more than once with what must be
the same values; an element no rank holds is an error.
"""

from __future__ import annotations

import math

import torch

from ._wire import all_gather_flat, all_gather_objects


def is_sharded_tensor(value) -> bool:
    try:
        from torch.distributed._shard.sharded_tensor import ShardedTensor
    except ImportError:  # pragma: no cover - a torch without ShardedTensor
        return False
    return isinstance(value, ShardedTensor)


def unshard_sharded_tensor(st) -> torch.Tensor:
    """The whole tensor behind ShardedTensor `st`, on every rank, bit for bit.  Collective (world)."""
    shape = tuple(st.size())
    dtype = st.metadata().tensor_properties.dtype
    local = st.local_shards()
    where = [(tuple(s.metadata.shard_offsets), tuple(s.metadata.shard_sizes)) for s in local]
    device = local[0].tensor.device if local else torch.device("cpu")
    flat = (
        torch.cat([s.tensor.detach().reshape(-1) for s in local])
        if local
        else torch.empty(0, dtype=dtype, device=device)
    )
    every = all_gather_objects(where)
    sizes = [sum(math.prod(size) for _, size in shards) for shards in every]
    parts = all_gather_flat(flat, sizes)
    whole = torch.empty(shape, dtype=dtype, device=device)
    covered = torch.zeros(shape, dtype=torch.bool)
    for shards, part in zip(every, parts):
        pos = 0
        for offsets, size in shards:
            n = math.prod(size)
            region = tuple(slice(o, o + k) for o, k in zip(offsets, size))
            whole[region] = part[pos : pos + n].reshape(size)
            covered[region] = True
            pos += n
    if not bool(covered.all()):
        missing = tuple(int(i) for i in (~covered).nonzero()[0])
        raise ValueError(f"no rank holds element {missing} of a ShardedTensor of shape {shape}")
    return whole
