"""Structural and bitwise comparison of two OSDs, with messages that say where.

`first_difference` walks two OSDs (any nesting of dicts, lists, tuples,
tensors, DTensors and scalars) in the expected one's order and returns the
first place they differ, `differences` every place (up to `MAX_DIFFERENCES`, so
one known defect cannot hide another difference beside it); `assert_osd_equal`
raises `OSDMismatch` naming the first:

    OSD mismatch at state['layers.0.weight']['exp_avg']: values differ at
    index (1, 2): expected 0.25, actual 0.5 (3 of 12 elements differ)

Tensors are compared bit for bit by default (so ``-0.0 != 0.0`` and NaN equals
the same NaN); pass ``tolerance`` (see `DTYPE_TOLERANCE`) where reduction order
legitimately differs (it also applies, at float64's entry, to Python floats in
per-parameter state: they are computed, like LBFGS's ``prev_loss``; floats in
``param_groups`` are hyperparameters and stay exact).  Types are compared strictly: a tensor ``lr`` is not a
float ``lr``, a tuple ``betas`` is not a list.  DTensors compare their
placements, mesh and global shape, then this rank's local shard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch
from torch.distributed.tensor import DTensor

#: ``(rtol, atol)`` per dtype for comparisons across different reduction
#: orders (the golden twin vs data-parallel training, where gradients are
#: averaged over ranks in another order).  fp32/fp64 allow a few ulps of
#: accumulated rounding over a handful of steps.  bf16 has 8 significant bits,
#: so one rounding is ~0.4%; 4% is ~10 roundings, which is what a few steps of
#: lr-0.5 SGD with momentum through BatchNorm at world 3-4 reached (1.8% in
#: 60 drawn scenarios at worlds 2-4, all within these bounds; most entries
#: were bitwise equal).  ``atol`` covers values that are mathematically zero
#: (a bias in front of a normalisation) and come out as rounding noise.
#: A model that mixes dtypes is compared with the tolerance of its least
#: precise dtype (`osdconform.scenario._golden.golden_tolerance`).
#:
#: The bound is normwise: each element may differ by ``atol + rtol *
#: max|expected|`` over the tensor, not by ``rtol`` of its own value.  A
#: gradient is a sum with cancellation, so a near-zero entry can carry a large
#: relative rounding error, and optimizers that divide by a running norm
#: (RMSprop, Adam) turn it into an update of full size.  Seen: a bf16 RMSprop
#: ``momentum_buffer`` under a DTensor plan with one element 12 % off its own
#: value after two steps, well within 4 % of the tensor's largest entry.
#: (This is how error bounds of summation are stated: relative to the sum of
#: magnitudes, not to the result.)
DTYPE_TOLERANCE: Mapping[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-9, 1e-12),
    torch.float32: (1e-4, 1e-6),
    torch.bfloat16: (4e-2, 1e-3),
    torch.float16: (5e-3, 1e-4),
}

#: At most this many differences are listed for one comparison (`differences`).
MAX_DIFFERENCES = 100

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class Difference:
    """The first place two OSDs differ: a path into the dict and what differs there."""

    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}" if self.path else self.what


class OSDMismatch(AssertionError):
    """Two OSDs differ; ``difference`` says where and how."""

    def __init__(self, difference: Difference, context: str = "", *, message: str | None = None) -> None:
        self.difference = difference
        self.context = context
        where = f" at {difference.path}" if difference.path else ""
        prefix = f"{context}: " if context else ""
        # `message`: the text of several problems at once (properties' `Checks`), this one first.
        super().__init__(message or f"{prefix}OSD mismatch{where}: {difference.what}")


def assert_osd_equal(
    expected: Any,
    actual: Any,
    *,
    tolerance: Mapping[torch.dtype, tuple[float, float]] | None = None,
    context: str = "",
) -> None:
    """Raise `OSDMismatch` at the first difference between `expected` and `actual`."""
    diff = first_difference(expected, actual, tolerance=tolerance)
    if diff is not None:
        raise OSDMismatch(diff, context)


def first_difference(
    expected: Any,
    actual: Any,
    *,
    tolerance: Mapping[torch.dtype, tuple[float, float]] | None = None,
) -> Difference | None:
    return next(_diffs(expected, actual, "", tolerance), None)


def differences(
    expected: Any,
    actual: Any,
    *,
    tolerance: Mapping[torch.dtype, tuple[float, float]] | None = None,
    limit: int = MAX_DIFFERENCES,
) -> list[Difference]:
    """Every place `expected` and `actual` differ, in the expected one's order (at most `limit`).

    Past a difference in keys or length the walk goes on over what both
    hold, so one missing entry does not hide a wrong value beside it; a
    difference in type ends the walk below that path, and a tensor counts
    once (its first differing element).
    """
    out = []
    for d in _diffs(expected, actual, "", tolerance):
        out.append(d)
        if len(out) >= limit:
            break
    return out


def _type_name(x: Any) -> str:
    return type(x).__name__


def _diffs(e: Any, a: Any, path: str, tol) -> Iterator[Difference]:
    if isinstance(e, torch.Tensor) or isinstance(a, torch.Tensor):
        d = _diff_tensor(e, a, path, tol)
        if d is not None:
            yield d
        return
    if type(e) is not type(a):
        yield Difference(
            path, f"type differs: expected {_type_name(e)} {e!r}, actual {_type_name(a)} {a!r}"
        )
        return
    if isinstance(e, dict):
        missing = [k for k in e if k not in a]
        unexpected = [k for k in a if k not in e]
        if missing or unexpected:
            parts = [f"missing {missing}"] if missing else []
            parts += [f"unexpected {unexpected}"] if unexpected else []
            yield Difference(path, f"keys differ: {', '.join(parts)}")
        for k in e:
            if k in a:
                sub = k if (not path and isinstance(k, str)) else f"{path}[{k!r}]"
                yield from _diffs(e[k], a[k], sub, tol)
        return
    if isinstance(e, (list, tuple)):
        if len(e) != len(a):
            yield Difference(path, f"length differs: expected {len(e)}, actual {len(a)}")
        for i, (x, y) in enumerate(zip(e, a)):
            yield from _diffs(x, y, f"{path}[{i}]", tol)
        return
    if isinstance(e, float) and tol is not None and torch.float64 in tol and path.startswith("state"):
        # A float in per-parameter state was computed (LBFGS's ``prev_loss`` is a
        # loss's ``.item()``), so it rounds like a tensor; a float in param_groups
        # is a hyperparameter, and stays exact.
        rtol, atol = tol[torch.float64]
        same = math.isclose(e, a, rel_tol=rtol, abs_tol=atol) or (math.isnan(e) and math.isnan(a))
        if not same:
            yield Difference(path, f"values differ beyond rtol={rtol}, atol={atol}: expected {e!r}, actual {a!r}")
        return
    elif isinstance(e, float):
        same = (e == a and math.copysign(1, e) == math.copysign(1, a)) or (
            math.isnan(e) and math.isnan(a)
        )
    else:
        same = e == a
    if not same:
        yield Difference(path, f"values differ: expected {e!r}, actual {a!r}")


def _diff_tensor(e: Any, a: Any, path: str, tol) -> Difference | None:
    if type(e) is not type(a):
        return Difference(
            path, f"type differs: expected {_describe(e)}, actual {_describe(a)}"
        )
    if type(e).__name__ == "ShardedTensor":
        return _diff_sharded_tensor(e, a, path, tol)
    if e.dtype != a.dtype:
        return Difference(path, f"dtype differs: expected {e.dtype}, actual {a.dtype}")
    if e.shape != a.shape:
        return Difference(
            path, f"shape differs: expected {tuple(e.shape)}, actual {tuple(a.shape)}"
        )
    if e.device != a.device:
        return Difference(path, f"device differs: expected {e.device}, actual {a.device}")
    if e.layout != a.layout:
        return Difference(path, f"layout differs: expected {e.layout}, actual {a.layout}")
    if e.layout == torch.sparse_coo:
        return _diff_sparse(e, a, path, tol)
    if isinstance(e, DTensor):
        if tuple(e.placements) != tuple(a.placements):
            return Difference(
                path, f"placements differ: expected {e.placements}, actual {a.placements}"
            )
        if e.device_mesh != a.device_mesh:
            return Difference(
                path, f"device mesh differs: expected {e.device_mesh}, actual {a.device_mesh}"
            )
        d = _diff_tensor(e.to_local(), a.to_local(), path, tol)
        if d is not None:
            return Difference(d.path, f"{d.what} (local shard)")
        return None
    return _diff_values(e.detach(), a.detach(), path, tol)


def _diff_sparse(e: torch.Tensor, a: torch.Tensor, path: str, tol) -> Difference | None:
    """Sparse COO tensors (SGD's momentum on sparse gradients): equal entries, once coalesced.

    Coalescing sums duplicate indices, so two tensors that hold the same
    values in another internal order compare equal; bits of the values still count.
    """
    e, a = e.detach().coalesce(), a.detach().coalesce()
    if not torch.equal(e.indices(), a.indices()):
        return Difference(
            path,
            f"sparse indices differ: expected {e.indices().tolist()}, actual {a.indices().tolist()}",
        )
    d = _diff_values(e.values(), a.values(), path, tol)
    if d is not None:
        return Difference(d.path, f"{d.what} (values of the sparse tensor)")


def _diff_sharded_tensor(e: Any, a: Any, path: str, tol) -> Difference | None:
    """ShardedTensors (FSDP1's sharded state): global size, then this rank's shards."""
    if e.size() != a.size():
        return Difference(path, f"shape differs: expected {tuple(e.size())}, actual {tuple(a.size())}")
    def where(t):
        return [(list(s.metadata.shard_offsets), list(s.metadata.shard_sizes)) for s in t.local_shards()]
    if where(e) != where(a):
        return Difference(path, f"local shards differ: expected (offsets, sizes) {where(e)}, actual {where(a)}")
    for i, (x, y) in enumerate(zip(e.local_shards(), a.local_shards())):
        d = _diff_tensor(x.tensor, y.tensor, path, tol)
        if d is not None:
            return Difference(d.path, f"{d.what} (local shard {i})")
    return None


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        if x.numel() == 1 and not isinstance(x, DTensor):
            return f"{type(x).__name__}({_item(x.reshape(()))}, shape={tuple(x.shape)}, dtype={x.dtype})"
        return f"{type(x).__name__}(shape={tuple(x.shape)}, dtype={x.dtype})"
    return f"{_type_name(x)} {x!r}"


def _diff_values(e: torch.Tensor, a: torch.Tensor, path: str, tol) -> Difference | None:
    if tol is not None and e.is_floating_point() and e.dtype in tol:
        rtol, atol = tol[e.dtype]
        bound = atol + rtol * _scale(e)
        close = torch.isclose(e.double(), a.double(), rtol=0.0, atol=bound, equal_nan=True)
        bad = ~close
        rule = f" beyond atol + rtol * max|expected| (rtol={rtol}, atol={atol})"
    else:
        bad = _bits_differ(e, a)
        rule = ""
    n_bad = int(bad.sum())
    if n_bad == 0:
        return None
    if e.dim() == 0:
        return Difference(path, f"values differ{rule}: expected {_item(e)}, actual {_item(a)}")
    idx = tuple(int(i) for i in bad.nonzero()[0])
    extra = ""
    if rule:
        max_abs = float((e.double() - a.double()).abs().max())
        extra = f"; max abs diff {max_abs:.3g}"
    return Difference(
        path,
        f"values differ{rule} at index {idx}: expected {_item(e[idx])}, actual {_item(a[idx])} "
        f"({n_bad} of {e.numel()} elements differ{extra})",
    )


def _scale(e: torch.Tensor) -> float:
    """The largest finite magnitude in `e` (0 if none): what `rtol` is relative to."""
    finite = e.double()[torch.isfinite(e)]
    return float(finite.abs().max()) if finite.numel() else 0.0


def _bits_differ(e: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Elementwise: do `e` and `a` differ in their bits?"""
    if e.is_complex():
        return _bits_differ(e.real, a.real) | _bits_differ(e.imag, a.imag)
    if e.is_floating_point():
        view = _INT_VIEW[e.element_size()]
        return e.contiguous().view(view) != a.contiguous().view(view)
    return e != a


def _item(t: torch.Tensor) -> str:
    """The element's value; with its bits where the value alone reads the same (NaNs)."""
    value = t.item()
    if isinstance(value, float) and math.isnan(value) and t.is_floating_point():
        bits = int(t.reshape(1).view(_INT_VIEW[t.element_size()]).item()) & ((1 << (8 * t.element_size())) - 1)
        return f"nan (bits 0x{bits:0{2 * t.element_size()}x})"
    return repr(value)
