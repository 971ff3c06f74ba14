"""The golden twin: a scenario trained in one process, without any plan.

For any scenario, the twin builds the same model and optimizers (same seed,
so the same initial values), trains them on the same global data for the same
steps, and returns the canonical full OSD.  Nothing is sharded and no
collective runs, so its optimizer state is what the distributed run *should*
hold; a backend's full OSD is compared with it within `GOLDEN_TOLERANCE`.

Matching data parallelism: under a data-parallel plan each of the ``W`` ranks
takes its slice of the global batch, its loss is the mean over its rows, and
DDP / FSDP average the gradients over the ranks.  The twin does the same
arithmetic in the same order as far as it can: one forward and backward per
rank slice (so batch statistics, e.g. BatchNorm's, are per slice as on the
ranks), each slice's gradient divided by ``W``, the results summed in rank
order.  At world 2 that is exactly what DDP and FSDP2 compute (one pre-divide,
one sum of two terms).  With more ranks, or where a collective sums in another
order or pre-/post-divides differently, the results differ by rounding only;
hence a tolerance.  Without a data-parallel plan every rank trains on the
whole global batch, as the twin does: then the twin is bit-identical.

The twin runs in any process (the driver, a rank) and needs no process group;
it computes with one intra-op thread, as ranks do.
"""

from __future__ import annotations

import torch

from ..compare import DTYPE_TOLERANCE
from ..reference import full_osd
from ._build import ROWS_PER_RANK, Workload, build_workload, global_batch
from ._models import apply_freezes, loss, select_rows
from ._plans import PlanSpec
from ._spec import Scenario

#: Dtypes from the least to the most precise (for `golden_tolerance`).
_PRECISION_ORDER = (torch.bfloat16, torch.float16, torch.float32, torch.float64)


def golden_tolerance(model) -> dict[torch.dtype, tuple[float, float]]:
    """``(rtol, atol)`` per dtype for comparing `model`'s distributed state with the twin's.

    The tolerances are `osdconform.compare.DTYPE_TOLERANCE` (the reasons are
    written there), with one rule on top: in a model that mixes dtypes every
    tensor gets the tolerance of the *least* precise dtype the model uses,
    because gradients flow through every layer: a float64 parameter below a
    bfloat16 layer gets a gradient with bfloat16 rounding in it, which the
    two reduction orders round differently.
    """
    used = {getattr(torch, name) for name in model.dtypes()}
    loosest = next(d for d in _PRECISION_ORDER if d in used or d == torch.float64)
    return {d: DTYPE_TOLERANCE[loosest] for d in DTYPE_TOLERANCE}


def golden_workload(scenario: Scenario, device: torch.device) -> Workload:
    """Fresh objects of `scenario` without its plan, on `device` (rank 0's seed and data)."""
    return build_workload(scenario.replace(plan=PlanSpec()), rank=0, device=device)


def golden_train(workload: Workload, scenario: Scenario, steps: int, *, first_step: int = 0) -> None:
    """Train the twin as `scenario`'s ranks train under its plan (see the module docstring)."""
    world = scenario.world_size
    for step in range(first_step, first_step + steps):
        apply_freezes(workload.module, scenario.model, step)
        batch = global_batch(scenario, step, workload.device)
        for opt in workload.optimizers:
            opt.zero_grad(set_to_none=True)
        if scenario.plan.data_parallel:
            _data_parallel_grads(workload.module, batch, world)
        else:
            out = loss(workload.module(batch))
            if out.requires_grad:
                out.backward()
        for opt in workload.optimizers:
            opt.step()
        for sched in workload.schedulers:
            sched.step()


def _data_parallel_grads(module: torch.nn.Module, batch, world: int) -> None:
    """Set each parameter's grad to the mean over rank slices of the slice's gradient."""
    params = [p for p in module.parameters()]
    totals: list[torch.Tensor | None] = [None] * len(params)
    for rank in range(world):
        rows = select_rows(batch, rank * ROWS_PER_RANK, (rank + 1) * ROWS_PER_RANK)
        out = loss(module(rows))
        if not out.requires_grad:
            continue
        out.backward()
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            part = p.grad / world
            totals[i] = part if totals[i] is None else totals[i] + part
            p.grad = None
    for p, total in zip(params, totals):
        p.grad = total


def golden_full_osd(scenario: Scenario, device: torch.device | str = "cpu") -> dict:
    """The canonical full OSD the scenario's ranks should hold after training (see module doc)."""
    device = torch.device(device)
    threads = torch.get_num_threads()
    # One intra-op thread, as ranks run (harness/_worker.py): on CPU the
    # number of threads changes how kernels split their reductions, hence
    # the rounding; with the same setting the twin is bitwise where it can be.
    torch.set_num_threads(1)
    try:
        workload = golden_workload(scenario, device)
        golden_train(workload, scenario, scenario.steps)
        return full_osd(workload.module, workload.optimizers)
    finally:
        torch.set_num_threads(threads)
