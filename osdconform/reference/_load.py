"""Load: a canonical OSD (full or sharded) -> a rank's optimizer.

For each sharded parameter, each tensor state value that has the parameter's
global shape is cut the way the parameter is cut (`shard_like`); 0-d values
(such as ``step``) and non-tensors are copied whole (except the moments of a
0-d DTensor parameter, `PARAM_SHAPED`, which become DTensors like it), and any other shape is an
error (no optimizer in the space keeps such state under a sharding plan:
``OptimizerSpec.unsupported_plan`` says why for Adafactor, LBFGS, ...).  The
state of an unsharded parameter is copied whole whatever its shape.  A value that is already a DTensor laid
out like its parameter is taken as this rank's piece; a DTensor laid out
otherwise is first made whole (`unshard`).  The result is handed to the
optimizer through its public ``load_state_dict``, keyed in the *target*
optimizer's own order, so group-internal param order need not match; the
dtype casts that method makes are undone (`_dtypes`).

Under FSDP1 (``use_orig_params=True``) a value is cut to this rank's 1-D
piece of the parameter (`_fsdp1`); a ShardedTensor value is made whole first
(`_sharded_tensor`); a ZeRO optimizer gets the state of its partition into its
local optimizer (`_zero`).

Loading validates everything before touching the optimizer, so a rejected
OSD leaves the optimizer as it was.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from . import _fsdp1, _zero
from ._dtensor import shard_like, unshard
from ._dtypes import restore_dtypes
from ._fqn import Optimizers, as_optimizers, group_layout, param_groups_of
from ._gather import PARAM_GROUPS, PARAMS, STATE, _copy_value
from ._param_shaped import FLAT, PARAM_SHAPED, factored_shape
from ._sharded_tensor import is_sharded_tensor, unshard_sharded_tensor


class OSDLoadError(ValueError):
    """The OSD does not fit the optimizer; the message names the offending key."""


def _local_value(value: Any, param: torch.Tensor, where: str, piece=None) -> Any:
    if isinstance(value, dict):
        return {k: _local_value(v, param, f"{where}[{k!r}]", piece) for k, v in value.items()}
    if is_sharded_tensor(value):
        value = unshard_sharded_tensor(value)
    if not isinstance(value, torch.Tensor):
        return _copy_value(value)
    if isinstance(value, DTensor):
        if isinstance(param, DTensor) and (
            value.device_mesh == param.device_mesh and value.placements == param.placements
        ):
            return _copy_value(value)
        value = unshard(value)
    if piece is not None and value.dim() > 0:
        try:
            return _fsdp1.cut_piece(value, param, piece, where)
        except ValueError as exc:
            raise OSDLoadError(str(exc)) from None
    name = where.rsplit("[", 1)[-1].strip("]'\"")
    # A 0-d parameter's moments are 0-d too, and shaped like it (a DTensor
    # when it is one), unlike the 0-d counters (``step``) torch keeps plain.
    param_shaped_scalar = value.dim() == 0 and param.dim() == 0 and name in PARAM_SHAPED
    if isinstance(param, DTensor) and (value.dim() > 0 or param_shaped_scalar):
        if tuple(value.shape) != tuple(param.shape):
            raise OSDLoadError(
                f"{where}: shape {tuple(value.shape)} does not match the sharded parameter's "
                f"shape {tuple(param.shape)}, so the reference cannot know how to cut it"
            )
        return shard_like(value, param)
    # An unsharded parameter's state is taken whole, whatever its shape: the
    # optimizer owns what its tensors mean (Adafactor keeps row and column
    # factors of a matrix, LBFGS flat vectors over all its parameters), and
    # its own load_state_dict takes them as they are.  Except the entries
    # torch.optim's optimizers keep shaped like the parameter: those must be.
    if name in PARAM_SHAPED and value.dim() > 0 and tuple(value.shape) != tuple(param.shape):
        raise OSDLoadError(
            f"{where}: shape {tuple(value.shape)} does not match the parameter's shape {tuple(param.shape)}"
        )
    # Adafactor's entries, whose shapes follow from the parameter's (its own load checks nothing).
    want = factored_shape(name, tuple(param.shape)) if value.dim() > 0 else None
    if want is not None and tuple(value.shape) != want:
        raise OSDLoadError(
            f"{where}: shape {tuple(value.shape)} is not the {want} Adafactor keeps for a parameter "
            f"of shape {tuple(param.shape)}"
        )
    return value.detach().clone()


def _check_state_entries(state: dict, layout: list[list[str]], params: dict) -> None:
    """Within a param group, parameters of equal rank must have the same state entries.

    Optimizers keep the same entries for every parameter of a group (which
    entries may depend on the parameter's rank, as Adafactor's factored
    moments do), so a parameter missing one that its peers have was cut from
    the OSD; loading it would fail only at the next step, far from the cause.
    """
    for g, fqns in enumerate(layout):
        names_by_rank: dict[int, set] = {}
        for fqn in fqns:
            if fqn in state:
                names_by_rank.setdefault(params[fqn].dim(), set()).update(state[fqn])
        for fqn in fqns:
            if fqn in state:
                missing = sorted(names_by_rank[params[fqn].dim()] - set(state[fqn]))
                if missing:
                    raise OSDLoadError(
                        f"state[{fqn!r}] lacks entries {missing} that other parameters of "
                        f"param group {g} have"
                    )


def _check_flat_vectors(state: dict, layout: list[list[str]], params: dict, optimizers: list) -> None:
    """An optimizer's flat vectors (`FLAT`: LBFGS's) must be as long as its group's parameters together.

    Such a vector is taken whole (it is no parameter's shape), and LBFGS's
    own load checks nothing: a wrong length would fail only at the next step.
    """
    first = 0
    for optimizer in optimizers:
        n = len(optimizer.param_groups)
        names = FLAT.get(type(optimizer).__name__.lower(), ())
        for fqns in layout[first : first + n] if names else ():
            numel = sum(params[f].numel() for f in fqns)
            for fqn in fqns:
                for name in names:
                    value = state.get(fqn, {}).get(name)
                    for v in value if isinstance(value, (list, tuple)) else (value,):
                        if isinstance(v, torch.Tensor) and tuple(v.shape) != (numel,):
                            raise OSDLoadError(
                                f"state[{fqn!r}][{name!r}]: shape {tuple(v.shape)} is not the ({numel},) "
                                f"of a flat vector over the group's parameters"
                            )
        first += n


def load_osd(module: nn.Module, optimizers: Optimizers, osd: dict) -> None:
    """Load the canonical OSD `osd` into `optimizers` (one, or several merged).

    Collective if values need unsharding.  With several optimizers, the OSD's
    param_groups are dealt out in optimizer order, as many as each has.
    """
    for key in (STATE, PARAM_GROUPS):
        if key not in osd:
            raise OSDLoadError(f"the OSD has no {key!r} entry")
    optimizers = as_optimizers(optimizers)
    layout = group_layout(module, optimizers)
    saved_groups = osd[PARAM_GROUPS]
    if len(saved_groups) != len(layout):
        raise OSDLoadError(
            f"the OSD has {len(saved_groups)} param group(s), the optimizer {len(layout)}"
        )
    index: dict[str, int] = {}
    params: dict[str, torch.Tensor] = {}
    native_groups = []
    for g, (saved, fqns, live) in enumerate(zip(saved_groups, layout, param_groups_of(optimizers))):
        saved_fqns = list(saved.get(PARAMS, []))
        if sorted(saved_fqns) != sorted(fqns):
            missing = sorted(set(fqns) - set(saved_fqns))
            extra = sorted(set(saved_fqns) - set(fqns))
            raise OSDLoadError(
                f"param_groups[{g}] names other parameters than the optimizer's group {g}: "
                f"missing {missing}, unexpected {extra}"
            )
        ids = []
        for fqn, param in zip(fqns, live[PARAMS]):
            index[fqn] = len(index)
            params[fqn] = param
            ids.append(index[fqn])
        lacking = sorted(set(live) - set(saved) - {PARAMS})
        if lacking:
            raise OSDLoadError(
                f"param_groups[{g}] lacks hyperparameters {lacking} that the optimizer's group "
                f"{g} has (is it the state of another optimizer class?)"
            )
        hp = {k: _copy_value(v) for k, v in saved.items() if k != PARAMS}
        native_groups.append({**hp, PARAMS: ids})
    unknown = sorted(set(osd[STATE]) - set(index))
    if unknown:
        raise OSDLoadError(f"state names parameters the optimizer does not hold: {unknown}")
    _check_state_entries(osd[STATE], layout, params)
    _check_flat_vectors(osd[STATE], layout, params, optimizers)
    # Walk params in the optimizers' order so collectives line up across ranks.
    shapes = _fsdp1.full_shapes(module)
    pieces = _fsdp1.piece_layouts(params.items(), shapes) if shapes is not None else {}
    native_state = {}
    for fqn, i in index.items():
        if fqn in osd[STATE]:
            local = {
                name: _local_value(v, params[fqn], f"state[{fqn!r}][{name!r}]", pieces.get(fqn))
                for name, v in osd[STATE][fqn].items()
            }
            # A rank that holds none of an FSDP1 parameter's elements gets no
            # gradient for it, so its optimizer keeps no state for it.
            if not _fsdp1.holds_nothing(params[fqn], shapes.get(fqn) if shapes is not None else None):
                native_state[i] = local
    # Nothing above touched an optimizer; now load each its share.
    first_group = first_id = 0
    for optimizer in optimizers:
        n = len(optimizer.param_groups)
        groups = native_groups[first_group : first_group + n]
        ids = [i for g in groups for i in g[PARAMS]]
        if _zero.is_zero(optimizer):
            live = [p for g in optimizer.param_groups for p in g[PARAMS]]  # the order of `ids`
            _zero.load(
                optimizer,
                [{k: v for k, v in g.items() if k != PARAMS} for g in groups],
                {p: native_state[i] for p, i in zip(live, ids) if i in native_state},
            )
        else:
            optimizer.load_state_dict(
                {
                    "state": {i - first_id: native_state[i] for i in ids if i in native_state},
                    "param_groups": [{**g, PARAMS: [i - first_id for i in g[PARAMS]]} for g in groups],
                }
            )
            live = [p for g in optimizer.param_groups for p in g[PARAMS]]  # in the order of `ids`
            restore_dtypes(optimizer, {p: native_state[i] for p, i in zip(live, ids) if i in native_state})
        first_group += n
        first_id += len(ids)
