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


def _is_strided(p) -> bool:
    # FSDP2 on top of TP marks the FSDP mesh dim with _StridedShard (private
    # in torch, so it is recognised by name and read through public fields).
    return type(p).__name__ == "_StridedShard"


def _cuts(p) -> bool:
    """Whether placement `p` cuts a tensor dim (Shard, or a strided shard)."""
    return isinstance(p, Shard) or _is_strided(p)


def _check_placements(dt: DTensor) -> None:
    for mesh_dim, p in enumerate(dt.placements):
        if type(p) is Shard or type(p) is Replicate or _is_strided(p):
            continue
        raise NotImplementedError(
            f"the reference cannot unshard placement {p!r} on mesh dim {mesh_dim}"
        )


def _shard_dim(p: Shard, ndim: int) -> int:
    return p.dim + ndim if p.dim < 0 else p.dim


def _order(dt: DTensor) -> list[int]:
    """The mesh dims in the order their placements cut the tensor.

    Placements cut left to right (mesh dim 0 first), except a strided shard:
    FSDP2 over TP shards a dim that TP (a later mesh dim) already split, and
    FSDP chunks TP's local piece.  So a strided mesh dim cuts after the later
    mesh dims that shard the same tensor dim, whose sizes multiply to its
    split factor.
    """
    plain = [m for m, p in enumerate(dt.placements) if not _is_strided(p)]
    strided = [m for m, p in enumerate(dt.placements) if _is_strided(p)]
    for m in strided:
        p = dt.placements[m]
        d = _shard_dim(p, dt.ndim)
        later = [k for k in plain if k > m and _cuts(dt.placements[k]) and _shard_dim(dt.placements[k], dt.ndim) == d]
        factor = 1
        for k in later:
            factor *= dt.device_mesh.size(k)
        if factor != int(p.split_factor):
            raise NotImplementedError(
                f"the reference reads a strided shard on mesh dim {m} as cutting after mesh dims "
                f"{later} (split factor {factor}); placements {dt.placements} say {p.split_factor}"
            )
    return plain + list(reversed(strided))


def local_sizes(shape: torch.Size, dt: DTensor) -> list[list[int]]:
    """The shape of this rank's piece after each cut, in `_order` (the first is the global shape)."""
    coord = dt.device_mesh.get_coordinate()
    sizes = [list(shape)]
    for mesh_dim in _order(dt):
        p = dt.placements[mesh_dim]
        cur = list(sizes[-1])
        if _cuts(p):
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
    order = _order(dt)
    gathered = False
    for level in reversed(range(len(order))):
        mesh_dim = order[level]
        p = dt.placements[mesh_dim]
        if not _cuts(p):
            continue
        d = _shard_dim(p, dt.ndim)
        whole = levels[level][d]
        piece = _all_gather_dim(piece, d, whole, mesh.get_group(mesh_dim), mesh.size(mesh_dim))
        gathered = True
    # Where no placement cuts, the local tensor is the whole one: hand out a copy, never
    # the live state (a full get must not change when the optimizer steps on).
    return piece if gathered else piece.clone()


def _all_gather_dim(
    piece: torch.Tensor, dim: int, whole: int, group: dist.ProcessGroup, k: int
) -> torch.Tensor:
    sizes = chunk_sizes(whole, k)
    padded_len = max(sizes)
    if piece.shape[dim] == padded_len:
        padded = piece  # nothing to pad: send the piece itself, no copy
    else:
        pad_shape = list(piece.shape)
        pad_shape[dim] = padded_len
        padded = piece.new_zeros(pad_shape)
        padded.narrow(dim, 0, piece.shape[dim]).copy_(piece)
    wire = _to_wire(padded)
    if dim == 0 and padded_len > 0 and all(n == padded_len for n in sizes):
        # Even pieces along dim 0: gather straight into the whole tensor (its chunks
        # are contiguous), so the peak holds it once, not receive buffers and a cat.
        whole_wire = wire.new_empty((k * wire.shape[0], *wire.shape[1:]))  # in wire units
        dist.all_gather(list(whole_wire.chunk(k)), wire, group=group)
        return _from_wire(whole_wire, piece.dtype)
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
    for mesh_dim in _order(like):
        p = like.placements[mesh_dim]
        if _cuts(p):
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
