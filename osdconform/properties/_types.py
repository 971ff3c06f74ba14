"""Property 6, type preservation: a loaded optimizer holds the same kinds of values.

Judged against the source optimizer, which torch's own ``step`` shaped:
``step`` keeps its dtype and device (float32 tensor on the param's device, or
a CPU scalar, depending on the optimizer's flags), ``lr`` stays a float or a
tensor, state tensors keep their dtype, and a state tensor shaped like its
parameter is a DTensor exactly when the parameter is one, with the same
placements and mesh.  Everything is checked locally on every rank.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from .. import reference as ref
from ..backends import make_backend
from ..expected_failures import PROBLEM_SEPARATOR
from ..scenario import Scenario
from ._steps import fresh, load_state, save_state, source


def _kind(v) -> str:
    if isinstance(v, DTensor):
        return f"DTensor({v.dtype}, {v.device.type}, placements={tuple(v.placements)})"
    if isinstance(v, torch.Tensor):
        return f"Tensor({v.dtype}, {v.device.type}, {'0-d' if v.dim() == 0 else f'{v.dim()}-d'})"
    return type(v).__name__


def _param_kind(p) -> str:
    return f"DTensor(placements={tuple(p.placements)})" if isinstance(p, DTensor) else "Tensor"


def _check(src, dst) -> None:
    dst_names = ref.param_fqns(dst.module)
    src_names = ref.param_fqns(src.module)
    src_state = {
        src_names[id(p)]: st
        for opt in src.optimizers for p, st in ref.local_state(opt).items()
    }
    problems = []
    for opt_src, opt_dst in zip(src.optimizers, dst.optimizers):
        for g, (gs, gd) in enumerate(zip(opt_src.param_groups, opt_dst.param_groups)):
            for key, value in gs.items():
                if key != "params" and _kind(value) != _kind(gd.get(key)):
                    problems.append(f"param_groups[{g}][{key!r}]: {_kind(value)} became {_kind(gd.get(key))}")
        for param, state in ref.local_state(opt_dst).items():
            fqn = dst_names[id(param)]
            before = src_state.get(fqn, {})
            for name, value in state.items():
                where = f"state[{fqn!r}][{name!r}]"
                if name in before and _kind(before[name]) != _kind(value):
                    problems.append(f"{where}: {_kind(before[name])} became {_kind(value)}")
                param_shaped = isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape == param.shape
                if param_shaped and _param_kind(param) != _param_kind(value):
                    problems.append(f"{where}: {_kind(value)} for a parameter that is {_param_kind(param)}")
    # Each problem on its own (PROBLEM_SEPARATOR), so an expected failure for
    # one kind of value cannot excuse another.
    assert not problems, PROBLEM_SEPARATOR.join(f"type preservation: {p}" for p in problems)


def types(ctx, scenario: Scenario, backend_spec: str, options, directory: str | None = None) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    saved = save_state(ctx, backend, src, options, directory)
    dst = fresh(ctx, scenario, backend)
    load_state(ctx, backend, dst, saved, options, directory)
    with ctx.phase("compare types"):
        _check(src, dst)
    return {}
