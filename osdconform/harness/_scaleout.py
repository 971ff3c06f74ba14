"""Scale-out under torchrun: rank 0 drives Hypothesis, the other ranks serve.

``torchrun --nnodes N --nproc-per-node M -m osdconform run -- ...`` starts
N*M processes.  They all join one process group (the *scale-out world*).
Rank 0 runs pytest in-process with a `ScaleOutPool` in place of the
`WorldPool`; every other rank runs `serve` until rank 0 says stop.  The world
size is fixed by torchrun (``WORLD_SIZE``), so scenarios use that size only.

Tasks and results travel through the rendezvous store torchrun gives
(``MASTER_ADDR``/``MASTER_PORT``; the agent's store, or one hosted by rank 0
under other launchers), never through collectives, so a stuck collective can
never stop rank 0 from noticing it:

* ``task/<n>``: the pickled task ``n`` (or a stop), read by every rank;
* ``res/<n>/<rank>``: each rank's answer, ``("done", value)`` or
  ``("error", RankReport)``; ``err/<n>`` marks that some rank raised;
  ``ndone/<n>`` counts answers and ``all/<n>`` is set by the last one;
* ``dump/<n>`` asks every rank still busy with task ``n`` for the phase and
  Python stack of its task thread, answered in ``stack/<n>/<rank>``;
* ``shutdown`` tells every rank to leave, ``bye/<rank>`` is the answer.

Every rank, rank 0 included, runs its share of a task in a daemon thread
while its main thread keeps watching the store.  So a task that hangs on any
rank leaves rank 0's main thread free to time the example out (the same
``--osd-timeout`` and the same 5 s grace after a rank raised as the local pool)
and to attribute the hang to ranks and phases.  What it cannot do is respawn
the world: torchrun owns the processes, and a rank stuck in a collective stays
stuck.  So after a hang (or a failed health barrier) the world is *lost*:
every later example fails at once with `RankHang` naming the original hang,
and at the end every rank exits anyway (stuck task threads are abandoned, and
the processes leave with ``os._exit``).

A rank that dies is torchrun's business: its agent stops every worker and
reports the rank and its exit code (there is no world left to report to).

This module is rank 0's side (`ScaleOutPool`, and how the plugin finds it);
every rank's membership (`ScaleOutMember`: the store, the process group, the
task thread, serving) is in ``_member.py``.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from typing import Any, Callable

from ._errors import RankError, RankHang, RankReport, WorldStartError
from ._failures import hang_message, health_barrier, rank_error
from ._member import ScaleOutMember, _poll, _stack_of
from ._worker import Task

#: Environment variables a torchrun (or any env:// launcher) sets for its workers.
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

_ACTIVE: "ScaleOutPool | None" = None


def under_torchrun(environ: dict | None = None) -> bool:
    """Is this process a worker of torchrun (or of another env:// launcher)?"""
    env = os.environ if environ is None else environ
    return "TORCHELASTIC_RUN_ID" in env or all(k in env for k in LAUNCH_ENV)


def active_pool() -> "ScaleOutPool | None":
    """The scale-out pool rank 0's pytest should use instead of a `WorldPool`, if any."""
    return _ACTIVE


class ScaleOutPool:
    """Rank 0's side: the `WorldPool` interface over the fixed scale-out world.

    ``run(size, fn, *args, timeout=None, **kwargs)`` runs ``fn(ctx, *args,
    **kwargs)`` on every rank and returns the values by rank, or raises
    `PropertyViolation` / `RankError` / `RankHang` like the local pool.
    `size` must be the torchrun world size.
    """

    def __init__(
        self, member: ScaleOutMember, *, timeout: float = 120.0, grace: float = 5.0,
        health_timeout: float = 15.0,
    ) -> None:
        if member.rank != 0:
            raise ValueError("only rank 0 drives the scale-out world")
        self.member = member
        self.size = member.size
        self.device = member.device
        self.timeout = timeout
        self.grace = grace
        self.health_timeout = health_timeout
        self.spawned = 0  # nothing is ever spawned: torchrun owns the processes
        self.closed = False
        self._n = 0
        self._lost: str | None = None  # why the world can no longer run tasks
        self._lock = threading.Lock()

    @property
    def lost(self) -> str | None:
        return self._lost

    def run(
        self,
        size: int,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float | None = None,
        repeat: Any = None,
        **kwargs: Any,
    ) -> list[Any]:
        # `repeat` (recognising a repeated hang early) is WorldPool's; here a hang
        # ends the scale-out world, so there is no second one to recognise.
        with self._lock:
            if self.closed:
                raise RuntimeError("this scale-out pool is closed")
            if self._lost is not None:
                _fail(self._not_run(fn, args))
            if size != self.size:
                raise WorldStartError(
                    f"a world of {size} cannot be started under torchrun: the scale-out world "
                    f"has WORLD_SIZE={self.size} ranks (use --osd-world-sizes={self.size})"
                )
            payload = pickle.dumps(("task", Task(fn, tuple(args), dict(kwargs))))
            try:
                return self._dispatch(payload, timeout or self.timeout)
            except RankHang as hang:
                self._lose(f"{_call(fn, args)} hung:\n{hang}")
                _fail(hang.with_traceback(None))
            except RankError:
                self._check_health()
                raise

    def _dispatch(self, payload: bytes, timeout: float) -> list[Any]:
        self._forget(self._n)
        self._n += 1
        n = self._n
        store = self.member.store
        store.set(f"task/{n}", payload)
        own = self.member.start(n, payload)
        start = time.monotonic()
        deadline = start + timeout
        errored = False
        while True:
            if _poll(lambda: store.check([f"all/{n}"]), min(deadline, time.monotonic() + 0.05)):
                break
            if time.monotonic() >= deadline:
                break
            if not errored and store.check([f"err/{n}"]):
                # The others may now wait forever in a collective with that rank.
                errored = True
                deadline = min(deadline, time.monotonic() + self.grace)
        answers: dict[int, tuple[str, Any]] = {}
        for r in range(self.size):
            key = f"res/{n}/{r}"
            if store.check([key]):
                try:
                    answers[r] = pickle.loads(store.get(key))
                except Exception as exc:  # noqa: BLE001 (an answer that does not unpickle here)
                    answers[r] = ("error", RankReport.from_exception(
                        r, "receive result", exc, f" (while rank 0 read rank {r}'s answer)"))
        pending = sorted(set(range(self.size)) - set(answers))
        errors = {r: p for r, (k, p) in answers.items() if k == "error"}
        if pending:
            raise RankHang(self._hang_message(n, pending, errors, own, time.monotonic() - start))
        if errors:
            raise self._error(errors)
        return [answers[r][1] for r in range(self.size)]

    def _forget(self, n: int) -> None:
        """Delete task `n`'s keys (the store would otherwise grow with every example)."""
        if n < 1:
            return
        store = self.member.store
        for key in (f"task/{n}", f"err/{n}", f"ndone/{n}", f"all/{n}", f"dump/{n}",
                    *(f"res/{n}/{r}" for r in range(self.size)),
                    *(f"stack/{n}/{r}" for r in range(self.size))):
            store.delete_key(key)

    # -- failure messages ------------------------------------------------------

    def _where(self) -> str:
        return f"scale-out world of {self.size} under torchrun"

    def _error(self, errors: dict[int, RankReport]) -> RankError:
        return rank_error(self._where(), self.size, errors)

    def _hang_message(self, n, pending, errors, own, waited) -> str:
        stacks = self._stacks(n, pending, own)
        phases = {r: phase for r, (phase, _) in stacks.items()}
        tail = []
        for r in pending:
            phase, stack = stacks.get(r, ("?", "(rank did not answer the stack request)"))
            tail.append(f"--- rank {r} task thread stack (phase {phase!r}) ---\n{stack}")
        return hang_message(
            self._where(),
            "it cannot be respawned, so the rest of this run fails fast",
            self.size,
            pending,
            errors,
            phases,
            waited,
            tail,
        )

    def _stacks(self, n, pending, own, wait_s: float = 2.0) -> dict[int, tuple[str, str]]:
        """Phase and task-thread stack of every pending rank (rank 0's own, the others' by request)."""
        store = self.member.store
        store.set(f"dump/{n}", b"1")
        out: dict[int, tuple[str, str]] = {}
        if 0 in pending:
            out[0] = (self.member.ctx.current_phase, _stack_of(own))
        remote = [r for r in pending if r != 0]
        deadline = time.monotonic() + wait_s
        for r in remote:
            key = f"stack/{n}/{r}"
            if _poll(lambda key=key: store.check([key]), deadline):
                out[r] = pickle.loads(store.get(key))
        return out

    # -- a lost world -----------------------------------------------------------

    def _lose(self, why: str) -> None:
        self._lost = why
        self.member.stuck = True

    def _not_run(self, fn, args) -> RankHang:
        exc = RankHang(
            f"not run: the {self._where()} was lost earlier and cannot be respawned; "
            f"every example after the hang fails at once.  The original hang, {self._lost}"
        )
        exc.not_run = True  # the plugin writes no reproducer for an example that did not run
        return exc

    def _check_health(self) -> None:
        """After a rank raised (and all answered): is the process group still usable?"""
        try:
            self._dispatch(pickle.dumps(("task", Task(health_barrier))), self.health_timeout)
        except Exception as exc:  # noqa: BLE001
            self._lose(f"the health barrier after a rank raised failed:\n{exc}")

    # -- teardown ---------------------------------------------------------------

    def close(self, bye_timeout: float = 10.0) -> None:
        """Tell every rank to leave and wait (briefly) until they said so."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            store = self.member.store
            store.set(f"task/{self._n + 1}", pickle.dumps(("stop", None)))
            store.set("shutdown", b"1")
            deadline = time.monotonic() + bye_timeout
            for r in range(1, self.size):
                _poll(lambda r=r: store.check([f"bye/{r}"]), deadline, max_sleep=0.05)

    def __enter__(self) -> "ScaleOutPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _call(fn, args) -> str:
    text = f"{getattr(fn, '__qualname__', fn)}({', '.join(repr(a) for a in args)})"
    return text if len(text) < 2000 else text[:2000] + "...)"


def _fail(exc: BaseException):
    # One raise site for a hang and for every example refused after it, so
    # Hypothesis sees one failure (not a flaky one) while it shrinks.
    raise exc


def activate(pool: "ScaleOutPool | None") -> None:
    """Make `pool` the one the pytest plugin uses (rank 0, before ``pytest.main``)."""
    global _ACTIVE
    _ACTIVE = pool
