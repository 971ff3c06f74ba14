"""Rank tasks for tests/cover/test_plans.py and tests/cover/test_reference_plans.py.

Module-level functions run on every rank of a `WorldPool` world (see
``tests/_rank_tasks.py`` for the conventions).  Checks are plain asserts and
`assert_osd_equal`, so a failure names the rank and the phase.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor

from osdconform import reference as ref
from osdconform.compare import assert_osd_equal
from osdconform.scenario import Scenario, build_workload, train


def _to_cpu(value):
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return value


def trained_full_osd(ctx, scenario: Scenario) -> dict:
    """Train `scenario` under its plan; the reference's full OSD (on CPU)."""
    with ctx.phase("build"):
        w = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    with ctx.phase("train"):
        train(w, scenario.steps)
    with ctx.phase("gather"):
        return _to_cpu(ref.full_osd(w.module, w.optimizers))


def _layouts(osd: dict) -> dict:
    """How each state value is held on this rank: DTensor placements, or the local shape."""
    out = {}
    for fqn, values in osd[ref.STATE].items():
        for name, v in values.items():
            if isinstance(v, DTensor):
                out[f"{fqn}.{name}"] = ("dtensor", tuple(str(p) for p in v.placements), tuple(v.to_local().shape))
            elif isinstance(v, torch.Tensor):
                out[f"{fqn}.{name}"] = ("tensor", tuple(v.shape))
    return out


def load_gather(ctx, scenario: Scenario) -> dict:
    """full_osd -> load_osd into fresh objects -> full_osd is the same; likewise from the sharded OSD."""
    with ctx.phase("build"):
        src = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    with ctx.phase("train"):
        train(src, scenario.steps)
    with ctx.phase("gather"):
        full = ref.full_osd(src.module, src.optimizers)
        sharded = ref.sharded_osd(src.module, src.optimizers)
    for form, osd in (("full", full), ("sharded", sharded)):
        with ctx.phase(f"load {form}"):
            dst = build_workload(scenario, rank=ctx.rank, device=ctx.device, init_seed=scenario.seed + 1)
            ref.load_osd(dst.module, dst.optimizers, osd)
        with ctx.phase(f"compare after loading the {form} OSD"):
            assert_osd_equal(full, ref.full_osd(dst.module, dst.optimizers), context=f"{form}: full gather")
            assert_osd_equal(sharded, ref.sharded_osd(dst.module, dst.optimizers), context=f"{form}: local state")
    return {"full": _to_cpu(full), "layouts": _layouts(sharded), "local_entries": len(sharded[ref.STATE])}
