"""Rank tasks for the golden-twin tests (``WorldPool.run``; see ``helpers.rank_tasks``)."""

from __future__ import annotations

from osdconform import reference as ref
from osdconform.scenario import Scenario, build_workload, train


def trained_full_osd(ctx, scenario: Scenario) -> dict:
    """Build and train `scenario` under its plan; the reference gather of its optimizers."""
    with ctx.phase("build"):
        workload = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    with ctx.phase("train"):
        train(workload, scenario.steps)
    with ctx.phase("reference gather"):
        return ref.full_osd(workload.module, workload.optimizers)
