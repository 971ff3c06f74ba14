"""Property 7, isolation: a loaded optimizer and a returned OSD do not alias each other.

* After a set, mutating the dict that was passed in (every tensor in place,
  every hyperparameter) must not change the optimizer: a caller may reuse or
  free that dict, or load it into a second optimizer.
* After a full get, stepping the optimizer must not change the returned dict,
  where the backend promises copies (``Capabilities.get_copies``).
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from .. import reference as ref
from ..backends import make_backend
from ..reference._sharded_tensor import is_sharded_tensor
from ..scenario import Scenario
from ._steps import Checks, fresh, gather, load_state, save_state, source, summary, train_steps


@torch.no_grad()
def _scribble(value):
    """Mutate `value` in place where possible; return what replaces it otherwise."""
    if isinstance(value, DTensor):
        value.to_local().add_(1).mul_(3)
        return value
    if is_sharded_tensor(value):  # FSDP1's sharded form: no in-place ops, but its shards have them
        for shard in value.local_shards():
            _scribble(shard.tensor)
        return value
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            value.add_(1).mul_(3)
        else:
            value.add_(7)
        return value
    if isinstance(value, dict):
        for k in list(value):
            value[k] = _scribble(value[k])
        return value
    if isinstance(value, list):
        for i in range(len(value)):
            value[i] = _scribble(value[i])
        return value
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 3 + 1
    return value


def isolation_after_set(ctx, scenario: Scenario, backend_spec: str, options) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    saved = save_state(ctx, backend, src, options, None)
    dst = fresh(ctx, scenario, backend)
    load_state(ctx, backend, dst, saved, options, None)
    before = gather(ctx, dst, "loaded")
    with ctx.phase("mutate the source dict"):
        _scribble(saved)
    after = gather(ctx, dst, "loaded, after mutating the source dict")
    with ctx.phase("compare"):
        checks = Checks()
        checks.equal(before, after, "isolation (loaded optimizer before vs after mutating the dict it was loaded from)")
        checks.done()
    return summary(before)


def isolation_after_get(ctx, scenario: Scenario, backend_spec: str, options) -> dict:
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    with ctx.phase("get"):
        got = backend.get_optimizer_state(src, options)
    with ctx.phase("copy"):
        snapshot = ref._gather._copy_value(got)
    with ctx.phase("train after get"):
        train_steps(backend, src, 1, first_step=scenario.steps)
    with ctx.phase("compare"):
        checks = Checks()
        checks.equal(snapshot, got, "isolation (returned OSD before vs after stepping the optimizer)")
        checks.done()
    return summary(snapshot)
