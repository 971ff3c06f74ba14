"""Property 4, resume: k steps, checkpoint, fresh objects, load, m steps == k+m steps.

The uninterrupted run and the resumed one run on the same ranks with the same
plan, data and op order, so on CPU (gloo) every op, reductions included, is
replayed identically and the comparison is bitwise: any difference is state
the checkpoint lost or distorted (a step count, a moment, a hyperparameter).

One exception, `ddp_rebuckets`: DDP reduces gradients in buckets that it
rebuilds after its first iteration, and the resumed run's first step after the
load is a fresh DDP's first iteration (one bucket) where the uninterrupted run
is in a later one (rebuilt buckets).  gloo's ring allreduce splits a bucket
into per-rank chunks, so with 3 or more ranks an element can be summed in
another order: the results differ in the last bit.  There the comparison uses
the golden twin's dtype tolerance (`golden_tolerance`), still far below what a
lost moment or an off-by-one step count changes.
Parameters are restored by the reference (`copy_params`: model state is not
the backend's job) and schedulers by their own ``state_dict``, as users do.
"""

from __future__ import annotations

from .. import reference as ref
from ..backends import make_backend
from ..golden import golden_tolerance
from ..scenario import Scenario
from ._steps import Checks, fresh, load_state, save_state, source, train_steps


def ddp_rebuckets(scenario: Scenario) -> bool:
    """Whether the resumed run may differ in the last bit (see the module docstring)."""
    return scenario.plan.kind == "ddp" and scenario.world_size >= 3


def resume(
    ctx, scenario: Scenario, backend_spec: str, options, directory: str | None, more_steps: int
) -> dict:
    return _resume(ctx, scenario, backend_spec, options, directory, more_steps, check_lrs=False)


def schedulers(
    ctx, scenario: Scenario, backend_spec: str, options, directory: str | None, more_steps: int
) -> dict:
    """Property 10: resume with LR schedulers and several optimizers.

    On top of `resume`: right after the load (optimizer state by the backend,
    scheduler state by ``load_state_dict``), every group's lr and every
    scheduler's last lr equal the source's, whichever order they were
    restored in, and several optimizers' states do not bleed into each other.
    """
    return _resume(ctx, scenario, backend_spec, options, directory, more_steps, check_lrs=True)


def _lrs(workload) -> dict:
    def plain(v):
        return v.item() if hasattr(v, "item") else v

    return {
        "group lr": [[plain(g["lr"]) for g in opt.param_groups] for opt in workload.optimizers],
        "scheduler last lr": [[plain(v) for v in s.get_last_lr()] for s in workload.schedulers],
    }


def _resume(ctx, scenario, backend_spec, options, directory, more_steps, *, check_lrs: bool) -> dict:
    backend = make_backend(backend_spec)
    k = scenario.steps
    straight = source(ctx, scenario, backend, steps=k + more_steps)
    src = source(ctx, scenario, backend)
    saved = save_state(ctx, backend, src, options, directory)
    scheduler_states = [s.state_dict() for s in src.schedulers]
    dst = fresh(ctx, scenario, backend)
    with ctx.phase("restore parameters"):
        ref.copy_params(src.module, dst.module)
    load_state(ctx, backend, dst, saved, options, directory)
    with ctx.phase("restore schedulers"):
        for sched, state in zip(dst.schedulers, scheduler_states):
            sched.load_state_dict(state)
    checks = Checks()  # the learning rates now, the whole state after training: both judged
    if check_lrs:
        with ctx.phase("compare learning rates"):
            checks.equal(_lrs(src), _lrs(dst), "schedulers (source vs restored learning rates)")
    with ctx.phase("train after resume"):
        train_steps(backend, dst, more_steps, first_step=k)
    with ctx.phase("reference gather"):
        expected = {"params": ref.full_params(straight.module), **ref.full_osd(straight.module, straight.optimizers)}
        actual = {"params": ref.full_params(dst.module), **ref.full_osd(dst.module, dst.optimizers)}
    tolerance = golden_tolerance(scenario.model, scenario.plan) if ddp_rebuckets(scenario) and k > 0 else None
    with ctx.phase("compare"):
        checks.all_equal(
            [(expected, actual, f"resume ({k} steps + {more_steps} after the checkpoint vs {k + more_steps} straight)")],
            tolerance=tolerance,
        )
    checks.done()
    return {"steps": k, "more_steps": more_steps}
