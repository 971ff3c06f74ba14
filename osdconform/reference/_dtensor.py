"""Whole tensors from local shards, and back, with the reference's own collectives.

A DTensor on an N-D mesh is split by its placements in mesh-dim order: the
global tensor is chunked by mesh dim 0's placement, each piece by mesh dim 1's,
and so on.  `unshard` undoes that from the last mesh dim to the first with one
``all_gather`` per sharded mesh dim; `shard` redoes it with ``narrow``.  Only
public, stable pieces of torch are used (``to_local``, ``placements``,
``device_mesh.get_group / get_coordinate / size``, ``DTensor.from_local``);
never ``full_tensor``, ``redistribute`` or ``distribute_tensor``, which are
what the backends under test use.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate, Shard

from ._chunks import chunk_bounds, chunk_sizes

#: gloo cannot move every dtype, and float collectives need not be bitwise.
#: Tensors travel as same-width integers, which every backend moves exactly.
#: gloo has no int16, so 2-byte types (bf16, fp16) travel as their bytes.
_TRANSPORT = {2: torch.uint8, 4: torch.int32, 8: torch.int64}


def _check_placements(dt: DTensor) -> None:
    for mesh_dim, p in enumerate(dt.placements):
        if type(p) is Shard or type(p) is Replicate:
            continue
        raise NotImplementedError(
            f"the reference cannot unshard placement {p!r} on mesh dim {mesh_dim}"
        )


def _shard_dim(p: Shard, ndim: int) -> int:
    return p.dim + ndim if p.dim < 0 else p.dim


def local_sizes(shape: torch.Size, dt: DTensor) -> list[list[int]]:
    """Per mesh level, the shape of this rank's piece (level 0 is the global shape)."""
    coord = dt.device_mesh.get_coordinate()
    sizes = [list(shape)]
    for mesh_dim, p in enumerate(dt.placements):
        cur = list(sizes[-1])
        if isinstance(p, Shard):
            d = _shard_dim(p, len(shape))
            _, cur[d] = chunk_bounds(cur[d], dt.device_mesh.size(mesh_dim), coord[mesh_dim])
        sizes.append(cur)
    return sizes


def unshard(dt: DTensor) -> torch.Tensor:
    """The whole tensor behind `dt`, on every rank, bit for bit."""
    _check_placements(dt)
    mesh = dt.device_mesh
    levels = local_sizes(dt.shape, dt)
    piece = dt.to_local().detach()
    if list(piece.shape) != levels[-1]:
        raise ValueError(
            f"local shard has shape {tuple(piece.shape)} but placements "
            f"{dt.placements} of global shape {tuple(dt.shape)} give {tuple(levels[-1])}"
        )
    for mesh_dim in reversed(range(mesh.ndim)):
        p = dt.placements[mesh_dim]
        if not isinstance(p, Shard):
            continue
        d = _shard_dim(p, dt.ndim)
        whole = levels[mesh_dim][d]
        piece = _all_gather_dim(piece, d, whole, mesh.get_group(mesh_dim), mesh.size(mesh_dim))
    return piece


def _all_gather_dim(
    piece: torch.Tensor, dim: int, whole: int, group: dist.ProcessGroup, k: int
) -> torch.Tensor:
    sizes = chunk_sizes(whole, k)
    padded_len = max(sizes)
    pad_shape = list(piece.shape)
    pad_shape[dim] = padded_len
    padded = piece.new_zeros(pad_shape)
    padded.narrow(dim, 0, piece.shape[dim]).copy_(piece)
    wire = _to_wire(padded)
    bufs = [torch.empty_like(wire) for _ in range(k)]
    dist.all_gather(bufs, wire, group=group)
    parts = [_from_wire(b, piece.dtype).narrow(dim, 0, n) for b, n in zip(bufs, sizes)]
    return torch.cat(parts, dim=dim)


def _to_wire(t: torch.Tensor) -> torch.Tensor:
    t = t.contiguous()
    if t.is_floating_point() or t.is_complex():
        return t.view(_TRANSPORT[t.element_size()]) if t.element_size() in _TRANSPORT else t
    return t


def _from_wire(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.view(dtype)


def shard_like(full: torch.Tensor, like: DTensor) -> DTensor:
    """Cut this rank's piece of `full` as `like` is cut, as a DTensor of `like`'s layout."""
    _check_placements(like)
    if tuple(full.shape) != tuple(like.shape):
        raise ValueError(
            f"cannot shard a tensor of shape {tuple(full.shape)} like a parameter "
            f"of shape {tuple(like.shape)}"
        )
    coord = like.device_mesh.get_coordinate()
    piece = full
    for mesh_dim, p in enumerate(like.placements):
        if isinstance(p, Shard):
            d = _shard_dim(p, full.dim())
            off, n = chunk_bounds(piece.shape[d], like.device_mesh.size(mesh_dim), coord[mesh_dim])
            piece = piece.narrow(d, off, n)
    local = piece.detach().to(like.to_local().device).clone()
    return DTensor.from_local(
        local,
        like.device_mesh,
        like.placements,
        run_check=False,
        shape=like.shape,
        stride=like.stride(),
    )
