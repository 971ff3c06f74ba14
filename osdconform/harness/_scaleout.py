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
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import threading
import time
import traceback
from datetime import timedelta
from typing import Any, Callable

from ._devices import device_kind
from ._errors import PropertyViolation, RankError, RankHang, RankReport, WorldStartError
from ._worker import RankConfig, RankContext, Task

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


class _PhaseSlot:
    """Where a `RankContext` writes its phase: here, only this process reads it."""

    value = b""


def _poll(check: Callable[[], bool], deadline: float, *, max_sleep: float = 0.01) -> bool:
    """Poll `check` with a growing sleep until it holds (True) or `deadline` passes (False).

    Store ``wait`` with a timeout would do, but each timeout logs a c10d
    warning; a store ``check`` costs tens of microseconds.
    """
    sleep = 0.0002
    while True:
        if check():
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(sleep, deadline - now))
        sleep = min(sleep * 2, max_sleep)


def _stack_of(thread: threading.Thread | None) -> str:
    if thread is None or thread.ident is None:
        return "(no task thread)"
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return "(task thread finished)"
    return "".join(traceback.format_stack(frame))


class ScaleOutMember:
    """One rank's membership of the scale-out world: store, process group, task thread."""

    def __init__(self, *, device: str = "cpu", pg_timeout: float = 1800.0, store_timeout: float = 300.0) -> None:
        import torch.distributed as dist

        env = os.environ
        self.rank = int(env["RANK"])
        self.size = int(env["WORLD_SIZE"])
        self.local_rank = int(env.get("LOCAL_RANK", self.rank))
        self.device = device
        host, port = env["MASTER_ADDR"], int(env["MASTER_PORT"])
        agent_store = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
        # Under torchrun the agent hosts the store; under a bare env:// launcher, rank 0 does.
        base = dist.TCPStore(
            host, port, world_size=None if agent_store else self.size,
            is_master=(self.rank == 0 and not agent_store),
            timeout=timedelta(seconds=store_timeout), wait_for_workers=False,
        )
        run_id = env.get("TORCHELASTIC_RUN_ID", "env")
        attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0")
        root = dist.PrefixStore(f"osdconform-scaleout/{run_id}/{attempt}", base)
        self.store = dist.PrefixStore("msg", root)
        kind = device_kind(device)
        self.torch_device = kind.setup(self.local_rank)
        dist.init_process_group(
            kind.pg_backend, store=dist.PrefixStore("pg", root), rank=self.rank,
            world_size=self.size, timeout=timedelta(seconds=pg_timeout),
        )
        self._base_store = base  # keep the connection (and rank 0's server) alive
        self.workdir = tempfile.mkdtemp(prefix=f"osdconform-scaleout-r{self.rank}-")
        config = RankConfig(
            rank=self.rank, world_size=self.size, device=device, store_host=host, store_port=port,
            log_path="", workdir=self.workdir, pg_timeout_s=pg_timeout,
        )
        self.ctx = RankContext(config, self.torch_device, _PhaseSlot())
        self.thread: threading.Thread | None = None
        self.stuck = False  # a task thread was abandoned: skip the orderly teardown

    # -- running one task ---------------------------------------------------

    def start(self, n: int, payload: bytes) -> threading.Thread:
        """Run task `n` (pickled) in a daemon thread that posts the answer itself."""
        self.thread = threading.Thread(
            target=self._run_task, args=(n, payload), name=f"osdconform-task-{n}", daemon=True
        )
        self.thread.start()
        return self.thread

    def _run_task(self, n: int, payload: bytes) -> None:
        ctx = self.ctx
        with ctx._task_scope():
            try:
                ctx.set_phase("receive task")
                _, task = pickle.loads(payload)
                ctx.set_phase("start")
                value = task.fn(ctx, *task.args, **task.kwargs)
            except BaseException as exc:  # noqa: BLE001 (every failure is an answer)
                self._post(n, "error", RankReport.from_exception(self.rank, ctx.current_phase, exc))
                return
        try:
            ctx.set_phase("send result")
            self._post(n, "done", value)
        except Exception as exc:  # noqa: BLE001 (an unpicklable result)
            self._post(n, "error", RankReport.from_exception(self.rank, "send result", exc))

    def _post(self, n: int, kind: str, payload: Any) -> None:
        self.store.set(f"res/{n}/{self.rank}", pickle.dumps((kind, payload)))
        if kind == "error":
            self.store.set(f"err/{n}", b"1")
        if self.store.add(f"ndone/{n}", 1) == self.size:
            self.store.set(f"all/{n}", b"1")

    def answer_dump(self, n: int) -> None:
        """Post the phase and stack of this rank's task thread (asked for after a timeout)."""
        text = pickle.dumps((self.ctx.current_phase, _stack_of(self.thread)))
        self.store.set(f"stack/{n}/{self.rank}", text)

    # -- the serving ranks ----------------------------------------------------

    def serve(self) -> None:
        """Ranks > 0: run every task rank 0 posts until it posts a stop or shuts down."""
        store = self.store
        n = 0
        while True:
            n += 1
            key = f"task/{n}"
            while not _poll(lambda: store.check([key]) or store.check(["shutdown"]),
                            time.monotonic() + 1.0, max_sleep=0.02):
                pass
            if not store.check([key]):
                break  # shutdown without a stop: rank 0 gave up on an earlier task
            payload = store.get(key)
            if pickle.loads(payload)[0] == "stop":
                break
            thread = self.start(n, payload)
            dumped = False
            while thread.is_alive():
                thread.join(0.05)
                if not thread.is_alive():
                    break
                if not dumped and store.check([f"dump/{n}"]):
                    self.answer_dump(n)
                    dumped = True
                if store.check(["shutdown"]):
                    self.stuck = True
                    break
            if self.stuck:
                break
        store.set(f"bye/{self.rank}", b"1")

    # -- teardown ---------------------------------------------------------------

    def leave(self) -> None:
        """Remove this rank's scratch space and leave the process group.

        If a task thread may be stuck in a collective, the group's teardown
        could block too: the caller then exits with ``os._exit`` instead.
        """
        import shutil

        import torch.distributed as dist

        shutil.rmtree(self.workdir, ignore_errors=True)
        if not self.stuck and dist.is_initialized():
            dist.destroy_process_group()


def _barrier(ctx) -> None:
    import torch.distributed as dist

    ctx.set_phase("health barrier")
    dist.barrier()


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
        self, size: int, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> list[Any]:
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

    def _statuses(self, errors: dict[int, RankReport], pending, phases: dict[int, str]) -> str:
        lines = []
        for r in range(self.size):
            if r in errors:
                lines.append(f"rank {r}: raised {errors[r].type_name} in phase {errors[r].phase!r}")
            elif r in pending:
                lines.append(f"rank {r}: no answer, last phase {phases.get(r, '?')!r}")
            else:
                lines.append(f"rank {r}: passed")
        return "\n".join(lines)

    def _error(self, errors: dict[int, RankReport]) -> RankError:
        first = errors[min(errors)]
        cls = PropertyViolation if first.is_assertion else RankError
        msg = (
            f"{first.message}\n\n"
            f"[{self._where()}; {first.type_name} on rank {first.rank} in phase {first.phase!r}]\n"
            f"{self._statuses(errors, (), {})}\n"
            f"--- remote traceback (rank {first.rank}) ---\n{first.traceback}"
        )
        return cls(msg, tuple(errors[r] for r in sorted(errors)))

    def _hang_message(self, n, pending, errors, own, waited) -> str:
        stacks = self._stacks(n, pending, own)
        phases = {r: phase for r, (phase, _) in stacks.items()}
        lines = []
        if errors:
            first = errors[min(errors)]
            lines.append(
                f"rank {first.rank} raised {first.type_name} in phase {first.phase!r} "
                f"and ranks {pending} then did not answer:\n{first.message}"
            )
        else:
            lines.append(
                f"example timed out after {waited:.1f} s: ranks {pending} did not answer (last phases: "
                + ", ".join(f"rank {r} in {phases.get(r, '?')!r}" for r in pending) + ")"
            )
        lines.append(
            f"[{self._where()}; it cannot be respawned, so the rest of this run fails fast]"
        )
        lines.append(self._statuses(errors, pending, phases))
        if errors:
            first = errors[min(errors)]
            lines.append(f"--- remote traceback (rank {first.rank}) ---\n{first.traceback}")
        for r in pending:
            phase, stack = stacks.get(r, ("?", "(rank did not answer the stack request)"))
            lines.append(f"--- rank {r} task thread stack (phase {phase!r}) ---\n{stack}")
        return "\n".join(lines)

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
            if _poll(lambda: store.check([key]), deadline):
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
            self._dispatch(pickle.dumps(("task", Task(_barrier))), self.health_timeout)
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
                _poll(lambda: store.check([f"bye/{r}"]), deadline, max_sleep=0.05)

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
