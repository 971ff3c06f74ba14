"""FSDP1 with ``use_orig_params=True``: whole state from the ranks' 1-D pieces, and back.

FSDP1 flattens the original parameters of a unit into one flat parameter
(with alignment padding between them), pads it to a multiple of the shard
group's size and gives each rank one equal chunk.  Each original parameter the
optimizer sees is this rank's part of it: a 1-D piece, possibly empty (or the
whole parameter, in its own shape, under NO_SHARD).  So a parameter's pieces
are contiguous and in rank order within a shard group, and concatenating them
rebuilds it flattened; padding never lands inside a piece.

Under HYBRID_SHARD the shard groups repeat: ranks ``0..s-1`` hold one copy,
``s..2s-1`` the next.  The reference finds ``s`` from the piece sizes alone:
the smallest ``s`` dividing the world whose first ``s`` pieces add up to the
parameter and whose sizes repeat with period ``s`` (for a sharded parameter
with elements, no smaller period can do both).

FSDP1 keeps no public record of an original parameter's shape once it is
flattened, so the plan records the shapes on the user's module before
wrapping (`remember_full_shapes`), as a user knows their own model.

A rank whose piece of a (non-empty) parameter is empty holds none of its
state: FSDP1 never gives it a gradient for it (``in_shard`` is false), so its
optimizer never steps it.  Whatever state the optimizer keeps there anyway is
what its constructor made (Adagrad creates ``step`` 0 and an empty ``sum``
for every parameter) and says nothing about the parameter: the gather ignores
it (``step`` comes from a rank that steps the parameter), the local OSD leaves
it out, and a load gives such a rank no state for it (`holds_nothing`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import nn

from ._fqn import user_fqn
from ._wire import all_gather_flat, all_gather_objects

#: Attribute of the user's module holding ``{fqn: full shape}``.
FULL_SHAPES_ATTR = "osdconform_full_shapes"


def remember_full_shapes(module: nn.Module) -> None:
    """Record each parameter's full shape on `module` (call before FSDP1 wraps it)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        shapes.setdefault(user_fqn(name), tuple(param.shape))
    module.__dict__[FULL_SHAPES_ATTR] = shapes


def full_shapes(module: nn.Module) -> dict[str, tuple[int, ...]] | None:
    """The recorded full shapes, or None if `module` was not flattened by FSDP1."""
    return module.__dict__.get(FULL_SHAPES_ATTR)


@dataclass(frozen=True)
class PieceLayout:
    """Where this rank's piece of one parameter sits."""

    shape: tuple[int, ...]  # the full shape
    sizes: tuple[int, ...]  # every rank's piece size
    span: int  # ranks per copy (the shard group's size)
    offset: int  # this rank's first element within the flattened parameter


def _span(fqn: str, sizes: tuple[int, ...], numel: int) -> int:
    world = len(sizes)
    for span in range(1, world + 1):
        if world % span == 0 and sum(sizes[:span]) == numel and all(
            sizes[r] == sizes[r % span] for r in range(world)
        ):
            return span
    raise ValueError(
        f"the pieces of {fqn!r} (sizes {list(sizes)} by rank) do not tile its {numel} elements"
    )


def piece_layouts(
    params: Iterable[tuple[str, torch.Tensor]], shapes: dict[str, tuple[int, ...]]
) -> dict[str, PieceLayout]:
    """Each parameter's piece layout.  Collective (one object all-gather)."""
    params = list(params)
    mine = [p.numel() for _, p in params]
    every = all_gather_objects(mine)
    rank = dist.get_rank()
    layouts = {}
    for i, (fqn, _) in enumerate(params):
        sizes = tuple(r[i] for r in every)
        shape = shapes[fqn]
        span = _span(fqn, sizes, math.prod(shape))
        first = (rank // span) * span
        layouts[fqn] = PieceLayout(shape, sizes, span, sum(sizes[first:rank]))
    return layouts


def _describe(state: dict | None, local_shape: torch.Size) -> dict[str, Any] | None:
    """What a rank tells the others about one parameter's state."""
    if not state:
        return None
    meta = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.shape == local_shape and value.dim() > 0:
            meta[name] = ("piece", value.dtype)
        else:
            meta[name] = ("whole", value.detach().clone() if isinstance(value, torch.Tensor) else value)
    return meta


def gather_states(entries: list[tuple[str, torch.Tensor, dict | None]], shapes) -> dict[str, dict]:
    """Whole state per FQN from every rank's pieces.  Collective; same `entries` order on every rank."""
    layouts = piece_layouts(((fqn, p) for fqn, p, _ in entries), shapes)
    metas = all_gather_objects([_describe(state, p.shape) for _, p, state in entries])
    out: dict[str, dict] = {}
    for i, (fqn, param, state) in enumerate(entries):
        layout = layouts[fqn]
        by_rank = [m[i] for m in metas]
        # Only ranks that hold elements of the parameter hold its state (see the module doc).
        empty = not math.prod(layout.shape)
        holders = [r for r, m in enumerate(by_rank) if m is not None and (layout.sizes[r] or empty)]
        if not holders:
            continue
        mine = None if holds_nothing(param, layout.shape) else state
        names = by_rank[holders[0]]
        for r in holders:
            if by_rank[r].keys() != names.keys():
                raise ValueError(f"state of {fqn!r}: ranks {holders[0]} and {r} hold different entries")
        for r in range(layout.span):
            if layout.sizes[r] and by_rank[r] is None:
                raise ValueError(f"state of {fqn!r}: rank {r} holds a piece of it but no state")
        whole: dict[str, Any] = {}
        for name, (kind, info) in names.items():
            if kind == "whole":
                whole[name] = info.to(param.device) if isinstance(info, torch.Tensor) else info
                continue
            local = mine[name].detach().reshape(-1) if mine else param.new_empty(0, dtype=info)
            parts = all_gather_flat(local, layout.sizes)
            whole[name] = torch.cat(parts[: layout.span]).reshape(layout.shape).clone()
        out[fqn] = whole
    return out


def holds_nothing(param: torch.Tensor, shape: tuple[int, ...] | None) -> bool:
    """Whether this rank's piece of a non-empty FSDP1 parameter of full `shape` is empty.

    `shape` None: the parameter is not flattened by FSDP1 (then False).  Local.
    """
    return shape is not None and param.numel() == 0 and math.prod(shape) > 0


def cut_piece(value: torch.Tensor, param: torch.Tensor, layout: PieceLayout, where: str) -> torch.Tensor:
    """This rank's piece of the whole state value `value` (or `value` if it is already the piece)."""
    if tuple(value.shape) == layout.shape:
        piece = value.detach().reshape(-1)[layout.offset : layout.offset + param.numel()]
        return piece.reshape(param.shape).to(param.device).clone()
    if value.shape == param.shape:
        return value.detach().clone()
    raise ValueError(
        f"{where}: shape {tuple(value.shape)} is neither the parameter's shape {layout.shape} "
        f"nor this rank's piece {tuple(param.shape)}"
    )
