"""Steps shared by the properties: build, train, save/get, load/set, snapshot, compare.

Every property is a task run on every rank of a world (`WorldPool.run`):
``fn(ctx, scenario, backend_spec, options, *extra)``.  Phases are reported as
they start (``ctx.phase``), so a hang or an error is attributed to one of them.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

from .. import reference as ref
from ..backends import StateOptions
from ..compare import OSDMismatch, differences
from ..expected_failures import PROBLEM_SEPARATOR
from ..scenario import Scenario, Workload, build_workload, train
from ._other_values import give_other_values

#: Fresh objects are initialised with this offset from the scenario seed, so
#: they differ from the source in every parameter.
FRESH_SEED_OFFSET = 7919


def build(ctx, scenario: Scenario, backend, init_seed: int | None = None) -> Workload:
    """Fresh objects for `scenario`; a framework backend's ``prepare`` wraps them its own way."""
    prepare = getattr(backend, "prepare", None)
    workload = build_workload(
        scenario, rank=ctx.rank, device=ctx.device, init_seed=init_seed, planned=prepare is None
    )
    return workload if prepare is None else prepare(workload)


def train_steps(backend, workload: Workload, steps: int, first_step: int = 0) -> None:
    """`steps` training steps from `first_step`: the backend's ``train`` if it has one, else the suite's."""
    own = getattr(backend, "train", None)
    if own is None:
        train(workload, steps, first_step=first_step)
    else:
        own(workload, steps, first_step)


def source(ctx, scenario: Scenario, backend, steps: int | None = None) -> Workload:
    """Fresh objects for `scenario`, trained for its steps (or `steps`)."""
    with ctx.phase("build"):
        src = build(ctx, scenario, backend)
    with ctx.phase("train"):
        train_steps(backend, src, scenario.steps if steps is None else steps)
    return src


def fresh(ctx, scenario: Scenario, backend, name: str = "build fresh") -> Workload:
    """Untrained objects for `scenario`, initialised differently from the source,
    their param groups holding other values than the scenario's (`give_other_values`)."""
    with ctx.phase(name):
        workload = build(ctx, scenario, backend, init_seed=scenario.seed + FRESH_SEED_OFFSET)
        give_other_values(workload.optimizers, workload.module)
        return workload


def save_state(ctx, backend, workload: Workload, options: StateOptions, directory: str | None):
    """The backend's "checkpoint" step: an in-memory get, or a save to `directory`.

    A save is followed by a barrier, so every rank's save has returned before
    any rank loads (in this world, or in the next one, which starts after).
    A backend may then write on rank 0 only (as a ``torch.save`` checkpointer
    does) and read on every rank, as training scripts do with their own
    barrier; the suite must not judge it on a race it introduced itself.
    """
    if options.storage:
        with ctx.phase("save"):
            pending = backend.save_checkpoint(workload, directory, options)
        finish_save(ctx, pending)
        return None
    with ctx.phase("get"):
        return backend.get_optimizer_state(workload, options)


def finish_save(ctx, pending: Any) -> None:
    """Wait for a save in flight (what an async ``save_checkpoint`` returned, if
    anything), then the barrier after every save (see `save_state`)."""
    if pending is not None:
        if not callable(getattr(pending, "result", None)):
            raise TypeError(
                f"save_checkpoint returned {pending!r}: it must return None (saved) "
                "or the save in flight, with a result() that waits for it"
            )
        with ctx.phase("wait for the save in flight"):
            pending.result()
    with ctx.phase("barrier after save"):
        dist.barrier()


def load_state(ctx, backend, workload: Workload, saved: Any, options: StateOptions, directory: str | None) -> None:
    """The backend's "restore" step: an in-memory set of `saved`, or a load from `directory`.

    With ``broadcast_from_rank0`` only rank 0 passes the OSD; the others pass
    an empty dict, as torch's option documents.
    """
    if options.storage:
        with ctx.phase("load"):
            backend.load_checkpoint(workload, directory, options)
        return
    if options.broadcast_from_rank0:
        # Every rank must take the same branch: a collective on rank 0 only hangs.
        if ctx.rank != 0:
            saved = {}
    elif options.cpu_offload and options.full:
        # torch's cpu_offload hands the full OSD to rank 0 only; without
        # broadcast_from_rank0 a user passes rank 0's dict to every rank.
        with ctx.phase("share rank 0's OSD"):
            holder = [saved if ctx.rank == 0 else None]
            dist.broadcast_object_list(holder, src=0)
            saved = holder[0]
    with ctx.phase("set"):
        backend.set_optimizer_state(workload, saved, options)


def gather(ctx, workload: Workload, what: str) -> dict:
    """The reference's canonical full OSD of `workload` (collective)."""
    with ctx.phase(f"reference gather ({what})"):
        return ref.full_osd(workload.module, workload.optimizers)


def local_snapshot(workload: Workload) -> dict:
    """This rank's parameters and optimizer state, copied (local, no collectives)."""
    return {
        "params": ref.local_params(workload.module),
        "osd": ref.sharded_osd(workload.module, workload.optimizers),
    }


def summary(osd: dict) -> dict[str, Any]:
    return {"state_entries": len(osd.get(ref.STATE, {})), "groups": len(osd.get(ref.PARAM_GROUPS, []))}


class Checks:
    """Every check of an example runs, and every failing one is reported.

    A property adds its comparisons here instead of asserting them one by
    one; `done` then raises one failure holding every problem (between them
    `PROBLEM_SEPARATOR`), and the plugin judges each problem on its own: an
    expected failure excuses the problems it matches, never the others.  So a
    known defect that fires in an example (torch-dsd's ``betas`` as a list)
    cannot hide a new one in the same example, in the same section or in a
    later check.
    """

    def __init__(self) -> None:
        self.problems: list[AssertionError] = []

    def equal(self, expected: Any, actual: Any, context: str, tolerance=None) -> None:
        """Every difference between `expected` and `actual`, each a problem."""
        for d in differences(expected, actual, tolerance=tolerance):
            self.problems.append(OSDMismatch(d, context))

    def all_equal(self, pairs, tolerance=None) -> None:
        """Each pair's ``state``, ``param_groups`` and the rest (see `assert_all_equal`)."""
        sections = (ref.STATE, ref.PARAM_GROUPS)
        for section in sections:
            for expected, actual, context in pairs:
                if _has(expected, section) and _has(actual, section):
                    self.equal({section: expected[section]}, {section: actual[section]}, context, tolerance)
        for expected, actual, context in pairs:
            done = [k for k in sections if _has(expected, k) and _has(actual, k)]
            if done:  # the rest: what the sections above did not compare
                expected = {k: v for k, v in expected.items() if k not in done}
                actual = {k: v for k, v in actual.items() if k not in done}
            self.equal(expected, actual, context, tolerance)

    def fail(self, message: str) -> None:
        self.problems.append(AssertionError(message))

    def done(self) -> None:
        """Raise the one problem as it is, or all of them in one failure: an
        `OSDMismatch` (the first difference's) when one of them is a mismatch."""
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            message = PROBLEM_SEPARATOR.join(str(p) for p in self.problems)
            first = next((p for p in self.problems if isinstance(p, OSDMismatch)), None)
            if first is None:
                raise AssertionError(message)
            raise OSDMismatch(first.difference, first.context, message=message)


def _has(osd: Any, section: str) -> bool:
    return isinstance(osd, dict) and section in osd


def assert_all_equal(pairs, tolerance=None) -> None:
    """Compare every pair's ``state`` first, then their ``param_groups``, then the rest,
    and report every difference (`Checks`).

    So a known hyperparameter defect (an expected failure matched on its
    message) can never hide a difference in the tensors, nor anything else.
    """
    checks = Checks()
    checks.all_equal(pairs, tolerance)
    checks.done()
