"""A lifecycle on the ranks of one world, checked after every step against a shadow.

`lifecycle` is the property step the suite sends to a world (``osd.check``):
the lifecycle's steps ``[first, stop)`` that run at this world size.  A
lifecycle that reshards into other world sizes runs as several such tasks,
one per world, in order; what crosses from one world to the next crosses
through files in the example's directory, as it does between jobs:

* storage forms: the backend's own checkpoint folders (``live-ckpt-<n>``);
* in-memory forms: the dict each rank's get returned, ``torch.save``d by that
  rank at the end of its world (``live-ckpt-<n>.rank<r>.pt``), read by the
  rank of the same number in the next (rank 0's where the new world is larger);
* the model's parameters and the schedulers' states at each save
  (``live-ckpt-<n>.model.pt``): the reference restores them at each load.

The invariant.  Beside the backend's objects every rank keeps a shadow: the
same scenario built again, taking the same steps on the same data, whose
checkpoints are taken and restored by the reference oracle (its full OSD, in
memory).  After every step the reference gathers of the two (parameters and
full OSD) must be equal, bitwise: both run the same ops in the same order on
the same ranks (on CPU every op, reductions included, replays exactly), and
their DDP or FSDP objects are made fresh at the same steps, so any difference
is state the backend's checkpoint lost, distorted or mixed up, and the first
step that shows one is named.  (Why not the golden twin, one process without
a plan: its reductions run in another order, so it agrees only within a
tolerance, and over a chain of steps an optimizer that divides by a running
norm (RMSprop centered) drifts past it with no checkpoint involved: seen 1.4e-4
of the largest entry after two DDP steps at world 3.  The fidelity suite
compares the reference with the twin; here the shadow is the reference.)
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

from .. import reference as ref
from ..backends import StateOptions, make_backend
from ..backends.reference import ReferenceBackend
from ..properties._steps import Checks, build, fresh, load_state, save_state, train_steps
from ..scenario import Scenario, build_schedulers
from ..scenario._apply import trainable_params
from ._rules import (
    AddParamGroup,
    Freeze,
    GetSet,
    Load,
    NewWorld,
    RebuildSchedulers,
    Reshard,
    Restart,
    Save,
    Step,
    StepSchedulers,
    Train,
    Unfreeze,
    describe,
    scenario_after,
)

#: How the shadow checkpoints: the reference's full OSD, kept in memory.
SHADOW_FORM = StateOptions(full=True)


def lifecycle(
    ctx, scenario: Scenario, backend_spec: str, options, directory: str,
    start: Scenario, steps: tuple[Step, ...], first: int, stop: int,
) -> dict:
    """Run ``steps[first:stop]`` in this world (at `scenario`), the lifecycle having
    started at `start`; after each, compare the backend's objects with the shadow's."""
    live = _Run(ctx, make_backend(backend_spec), options, directory, scenario, "live")
    shadow = _Run(ctx, ReferenceBackend(), SHADOW_FORM, directory, scenario, "shadow")
    next_step = start.steps + sum(s.steps for s in steps[:first] if isinstance(s, Train))
    checks = Checks()
    stopped = False
    if first == 0:
        for run in (live, shadow):
            with ctx.phase(f"build and train ({run.tag})"):
                run.workload = build(ctx, start, run.backend)
                train_steps(run.backend, run.workload, start.steps)
        _compare(ctx, live, shadow, checks, "at the start")
        stopped = _any_problem(ctx, checks)
    for i in range(first, stop):
        if stopped:
            break  # later steps build on a wrong state: the first wrong step is the finding
        step = steps[i]
        if isinstance(step, NewWorld):
            with ctx.phase(f"step {i}: hand the in-memory checkpoints over and restart the process group"):
                for run in (live, shadow):
                    run.leave_world()
                ctx.restart_process_group(f"{directory}/{i}")
        for run in (live, shadow):
            with ctx.phase(f"step {i} ({run.tag}): {describe(step)}"):
                try:
                    run.take(step, next_step)
                except Exception as exc:  # the step's own phases (get, set, ...) hide which step it was
                    exc.add_note(f"in lifecycle step {i} ({run.tag}): {describe(step)}")
                    raise
        if isinstance(step, Train):
            next_step += step.steps
        _compare(ctx, live, shadow, checks, f"after step {i} ({describe(step)})")
        stopped = _any_problem(ctx, checks)
    if not stopped and stop < len(steps):
        with ctx.phase("hand the in-memory checkpoints to the next world"):
            live.export()
            shadow.export()
    ctx.set_phase("report what the steps showed")
    checks.done()
    return {"steps": stop - first}


def _any_problem(ctx, checks: Checks) -> bool:
    """Whether rank 0 found a problem, on every rank: all stop at the same step
    (a rank that went on alone would wait in the next collective forever)."""
    flag = [bool(checks.problems)]
    with ctx.phase("agree whether to go on"):
        dist.broadcast_object_list(flag, src=0)
    return flag[0]


def _gather(ctx, run: "_Run", when: str) -> dict:
    with ctx.phase(f"reference gather {when} ({run.tag})"):
        w = run.workload
        return {"params": ref.full_params(w.module), **ref.full_osd(w.module, w.optimizers)}


def _compare(ctx, live: "_Run", shadow: "_Run", checks: Checks, when: str) -> None:
    got, want = _gather(ctx, live, when), _gather(ctx, shadow, when)
    if ctx.rank == 0:  # the gathers are the same on every rank
        with ctx.phase(f"compare {when}"):
            checks.all_equal([(want, got, f"lifecycle {when}: shadow (reference checkpoints) vs backend")])


class _Run:
    """The live objects of one world and what its steps keep (checkpoints in memory)."""

    def __init__(self, ctx, backend, options, directory: str, scenario: Scenario, tag: str) -> None:
        self.ctx, self.backend, self.options, self.directory, self.tag = ctx, backend, options, directory, tag
        self.scenario = scenario
        self.workload = None
        self.saved: dict[int, Any] = {}  # in-memory forms: what the get returned

    def take(self, step: Step, next_step: int) -> None:
        ctx, backend, options = self.ctx, self.backend, self.options
        if isinstance(step, Train):
            train_steps(backend, self.workload, step.steps, first_step=next_step)
        elif isinstance(step, Save):
            self._save(step.checkpoint)
        elif isinstance(step, Load):
            self._load(step.checkpoint)
        elif isinstance(step, (Restart, NewWorld)):
            self.workload = fresh(ctx, self.scenario, backend)
            self._load(step.checkpoint)
        elif isinstance(step, Reshard):
            if self.workload is not None:  # a reshard within this world: a new plan
                self.scenario = scenario_after(self.scenario, (step,))
            self.workload = fresh(ctx, self.scenario, backend)
            self._load(step.checkpoint)
        elif isinstance(step, GetSet):
            got = backend.get_optimizer_state(self.workload, options)
            load_state(ctx, backend, self.workload, got, options, None)
        elif isinstance(step, StepSchedulers):
            for sched in self.workload.schedulers:
                sched.step()
        elif isinstance(step, RebuildSchedulers):
            w = self.workload
            self.workload = dataclasses.replace(w, schedulers=build_schedulers(w.scenario, w.optimizers))
        elif isinstance(step, Freeze):
            # The next training step freezes it (`train` applies the scenario's freezes).
            self.scenario = scenario_after(self.scenario, (step,))
            self.workload = dataclasses.replace(self.workload, scenario=self.scenario)
        elif isinstance(step, AddParamGroup):
            params = trainable_params(self.workload.module)
            group = {"params": [params[fqn] for fqn in step.group.params], **step.group.kwargs()}
            self.workload.optimizers[step.optimizer].add_param_group(group)
            self.scenario = scenario_after(self.scenario, (step,))
            self.workload = dataclasses.replace(self.workload, scenario=self.scenario)
        elif isinstance(step, Unfreeze):
            frozen = self.scenario.model.frozen_after()
            self.scenario = scenario_after(self.scenario, (step,))
            self.workload = dataclasses.replace(self.workload, scenario=self.scenario)
            still = self.scenario.model.frozen_after()
            for fqn in frozen:
                if still.get(fqn) != frozen[fqn]:
                    self.workload.module.get_parameter(fqn).requires_grad_(True)
        else:
            raise TypeError(f"not a lifecycle step: {step!r}")

    def _folder(self, checkpoint: int) -> str:
        return os.path.join(self.directory, f"{self.tag}-ckpt-{checkpoint}")

    def _save(self, checkpoint: int) -> None:
        w = self.workload
        folder = self._folder(checkpoint)
        if self.options.storage and self.ctx.rank == 0:
            os.makedirs(folder, exist_ok=True)
        dist.barrier()  # the folder exists before any rank writes into it
        saved = save_state(self.ctx, self.backend, w, self.options, folder)
        if saved is not None and not getattr(getattr(self.backend, "capabilities", None), "get_copies", False):
            # A get may hand out the live tensors (only `get_copies` promises
            # otherwise): a job keeping it as a checkpoint copies it first, as here.
            saved = copy.deepcopy(saved)
        self.saved[checkpoint] = saved
        params = ref.full_params(w.module)  # collective
        if self.ctx.rank == 0:
            torch.save({"params": params, "schedulers": [s.state_dict() for s in w.schedulers]},
                       f"{folder}.model.pt")
        dist.barrier()  # rank 0's file is there before any rank reads it

    def _load(self, checkpoint: int) -> None:
        w = self.workload
        saved = self.saved.get(checkpoint)
        if saved is None and not self.options.storage:
            saved = self._imported(checkpoint)
        load_state(self.ctx, self.backend, w, saved, self.options, self._folder(checkpoint))
        model = torch.load(f"{self._folder(checkpoint)}.model.pt", weights_only=False)
        ref.load_full_params(w.module, model["params"])
        for sched, state in zip(w.schedulers, model["schedulers"]):
            sched.load_state_dict(state)

    def export(self) -> None:
        """Write this rank's in-memory checkpoints for the next world (storage needs nothing)."""
        if self.options.storage:
            return
        for checkpoint, osd in self.saved.items():
            torch.save(osd, f"{self._folder(checkpoint)}.rank{self.ctx.rank}.pt")

    def leave_world(self) -> None:
        """Before the process group restarts: the in-memory checkpoints go to
        files (the loads after the restart read them back) and nothing built
        over the old groups is kept."""
        self.export()
        self.saved.clear()
        self.workload = None

    def _imported(self, checkpoint: int) -> Any:
        """An in-memory checkpoint a world before this one exported (`export`)."""
        mine = f"{self._folder(checkpoint)}.rank{self.ctx.rank}.pt"
        path = mine if os.path.exists(mine) else f"{self._folder(checkpoint)}.rank0.pt"
        return torch.load(path, weights_only=False)
