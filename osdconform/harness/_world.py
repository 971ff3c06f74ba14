"""One live world: N rank processes in one process group, serving tasks.

The driver (the pytest process, or an xdist worker) owns the rendezvous: a
``TCPStore`` it opens on port 0, so the OS picks a free port and parallel
drivers never collide, and no rendezvous file is left behind.  Ranks are
forked from a server that has imported torch already, never from the driver
(it has threads; forking it is unsafe): see ``_start.py``.

`World.run` sends one task to every rank and waits for all of them, watching
three things at once: the answers, the rank processes (a death is noticed at
once), and the clock (a hang is noticed at the deadline).  A rank that raises
while the others wait in a collective would block them forever; after the
first error the others get a short grace period, then count as hung; the
period ends early once they are all waiting, not working (``_blocked.py``).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import shutil
import signal
import tempfile
import time
from multiprocessing.connection import wait
from typing import Any, Callable

from ._blocked import BlockedWatch
from ._errors import HangSignature, PropertyViolation, RankCrash, RankError, RankHang, RankReport, WorldStartError
from ._failures import hang_message, rank_error, rank_statuses
from ._start import start_context
from ._workdirs import WORKDIR_PREFIX
from ._worker import PHASE_BYTES, RankConfig, Task, rank_main

_LOG_TAIL = 3000  # characters of a rank's log quoted in a failure

def _pickle(obj: Any) -> bytes:
    """Plain pickle, by value.

    Not multiprocessing's ForkingPickler: with torch imported it ships tensors
    as shared-memory handles, which cannot be forwarded (a result of one world
    passed on as an argument to another dies in transit).
    """
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


class World:
    """A warm process group of `size` ranks.  Not thread-safe; one task at a time."""

    def __init__(
        self,
        size: int,
        *,
        device: str = "cpu",
        startup_timeout: float = 120.0,
        pg_timeout: float = 600.0,
        env: dict[str, str] | None = None,
        start_method: str | None = None,
    ) -> None:
        """`start_method`: ``forkserver`` or ``spawn`` (default: `_start.start_method`)."""
        import torch.distributed as dist

        self.size = size
        self.device = device
        self.closed = False
        self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{size}-p{os.getpid()}-")
        self._store = dist.TCPStore(
            "127.0.0.1", 0, is_master=True, wait_for_workers=False
        )
        ctx = start_context(start_method)
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        # Each rank writes its current phase into its own shared slot; the
        # driver reads the slots only to explain a hang or a crash, so phase
        # reporting costs no message and no wake-up of the driver.
        self._phase_slots = [ctx.Array(ctypes.c_char, PHASE_BYTES, lock=False) for _ in range(size)]
        try:
            for rank in range(size):
                config = RankConfig(
                    rank=rank,
                    world_size=size,
                    device=device,
                    store_host="127.0.0.1",
                    store_port=self._store.port,
                    log_path=os.path.join(self.workdir, f"rank{rank}.log"),
                    workdir=self.workdir,
                    pg_timeout_s=pg_timeout,
                    env=tuple(sorted({**os.environ, **(env or {})}.items())),
                )
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=rank_main,
                    args=(config, child, self._phase_slots[rank], os.getpid()),
                    name=f"osdconform-w{size}-r{rank}",
                    daemon=True,
                )
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            self._await_ready(startup_timeout)
        except BaseException:
            self.close()
            raise

    # -- start-up ---------------------------------------------------------

    def _await_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(range(self.size))
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorldStartError(
                    f"world of {self.size}: ranks {sorted(waiting)} not ready after "
                    f"{timeout:.0f} s\n{self._logs(waiting)}"
                )
            for rank, kind, payload in self._receive(waiting, remaining):
                if kind == "ready":
                    waiting.discard(rank)
                elif kind == "start-error":
                    raise WorldStartError(
                        f"world of {self.size}: rank {rank} failed to start:\n{payload}"
                    )
                elif kind == "died":
                    raise WorldStartError(
                        f"world of {self.size}: rank {rank} died while starting "
                        f"({payload})\n{self._logs([rank])}"
                    )

    # -- running a task ---------------------------------------------------

    def run(
        self,
        fn: Callable[..., Any],
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        timeout: float = 60.0,
        grace: float = 5.0,
        repeat: "tuple[HangSignature, float] | None" = None,
    ) -> list[Any]:
        """Run ``fn(ctx, *args, **kwargs)`` on every rank; return the values by rank.

        Raises `PropertyViolation` / `RankError` if a rank raised, `RankHang` if
        ranks did not answer in time, `RankCrash` if a rank died.  After a hang
        or a crash the world is closed (the pool respawns it).

        ``repeat=(signature, seconds)``: a hang seen before.  When exactly its
        ranks are still out, each in its phase, for `seconds` on end while
        every other rank has answered, the example is that hang again and
        fails then, not at `timeout` (`_collect`).
        """
        if self.closed:
            raise RuntimeError("this world is closed")
        # Pickle once, send the same bytes to every rank.
        payload = _pickle(("task", Task(fn, tuple(args), dict(kwargs or {}))))
        for slot in self._phase_slots:
            slot.value = b"dispatch"
        try:
            for conn in self._conns:
                try:
                    conn.send_bytes(payload)
                except (BrokenPipeError, ConnectionResetError):
                    # The rank is dead or dying; the collect loop's sentinel
                    # watch reports it as a crash in phase 'dispatch'.
                    pass
            return self._collect(timeout, grace, repeat)
        except (RankError, PropertyViolation):
            raise  # every rank answered: the world is still usable
        except BaseException:
            # A failed send, a hang, a crash or Ctrl-C: the collective state of
            # the world is unknown.  Never reuse it.
            self.close(graceful=False)
            raise

    def _collect(self, timeout: float, grace: float, repeat=None) -> list[Any]:
        start = time.monotonic()
        deadline = start + timeout
        pending = set(range(self.size))
        values: dict[int, Any] = {}
        errors: dict[int, RankReport] = {}
        dead: dict[int, str] = {}
        repeated_since: float | None = None  # since when the hang of `repeat` shows again
        note = ""  # says so when the hang is a recognised repeat, or ended early
        blocked = BlockedWatch()
        while pending:
            now = time.monotonic()
            remaining = deadline - now
            if repeat is not None and not errors and not dead and self._shows(repeat[0], pending):
                repeated_since = repeated_since if repeated_since is not None else now
                if now - repeated_since >= repeat[1]:
                    note = (
                        f"\n[recognised as a repeat of this test's earlier hang: the same ranks in the same "
                        f"phases for {repeat[1]:.1f} s while every other rank had answered]"
                    )
                    break
                remaining = min(remaining, repeated_since + repeat[1] - now)
            else:
                repeated_since = None
                if repeat is not None:
                    remaining = min(remaining, 0.2)  # look again soon
            if errors and not dead:
                # The others may wait forever in a collective with the rank that raised:
                # once they are all waiting, not working, the grace period ends (`_blocked`).
                if blocked.blocked(self._procs[r].pid for r in pending):
                    note = (f"\n[ranks {sorted(pending)} were waiting, not working: no runnable thread "
                            f"and no CPU time used for {blocked.settle:.1f} s]")
                    break
                remaining = min(remaining, 0.1)
            if remaining <= 0 and now >= deadline:
                break
            for rank, kind, payload in self._receive(pending, max(remaining, 0.0)):
                if kind == "done":
                    values[rank] = payload
                    pending.discard(rank)
                elif kind == "error":
                    errors[rank] = payload
                    pending.discard(rank)
                    deadline = min(deadline, time.monotonic() + grace)
                elif kind == "died":
                    dead[rank] = payload
                    pending.discard(rank)
                    # The others may now wait forever in a collective with it.
                    deadline = min(deadline, time.monotonic() + grace)
        if dead:
            raise RankCrash(self._crash_message(dead, errors, pending))
        if pending:
            # One raise for a timed-out hang and its recognised repeat: Hypothesis tells
            # failures apart by where they are raised, and took the two for a flaky test.
            raise RankHang(self._hang_message(pending, errors, time.monotonic() - start) + note,
                           self._signature(pending))
        if errors:
            raise self._error(errors, values)
        return [values[r] for r in range(self.size)]

    def _receive(self, ranks: set[int], timeout: float):
        """Yield ``(rank, kind, payload)`` for whatever arrives within `timeout`."""
        by_obj: dict[Any, tuple[int, str]] = {}
        for r in ranks:
            by_obj[self._conns[r]] = (r, "conn")
            by_obj[self._procs[r].sentinel] = (r, "proc")
        ready = wait(list(by_obj), timeout=timeout)
        # Read answers before looking at deaths: a rank may answer and then die.
        for obj in sorted(ready, key=lambda o: by_obj[o][1] != "conn"):
            rank, what = by_obj[obj]
            if what == "conn":
                try:
                    kind, payload = obj.recv()
                except (EOFError, OSError):
                    continue  # the sentinel will report the death
                except Exception as exc:  # the answer did not unpickle here
                    yield rank, "error", RankReport.from_exception(
                        rank, "receive result", exc, f" (while the driver read rank {rank}'s answer)"
                    )
                    continue
                yield rank, kind, payload
            elif rank in ranks:
                # Drain what it said before dying; if it never answered, it died.
                answered = False
                for kind, payload in self._drain(rank):
                    yield rank, kind, payload
                    answered = answered or kind in ("done", "error", "ready", "start-error")
                if not answered:
                    yield rank, "died", self._exit_description(rank)

    def _drain(self, rank: int):
        conn = self._conns[rank]
        while True:
            try:
                if not conn.poll(0):
                    return
                yield conn.recv()
            except (EOFError, OSError):
                return

    # -- failure messages ------------------------------------------------------

    def _signature(self, pending: set[int]) -> HangSignature:
        phases = self.phases
        return HangSignature(tuple((r, phases[r]) for r in sorted(pending)))

    def _shows(self, signature: HangSignature, pending: set[int]) -> bool:
        """Whether the ranks still out are exactly `signature`'s, each in its phase."""
        phases = self.phases
        return set(pending) == signature.ranks and all(phases[r] == p for r, p in signature.phases)

    @property
    def phases(self) -> list[str]:
        """The phase each rank last reported (read from the shared slots)."""
        return [slot.value.decode("utf-8", "replace") for slot in self._phase_slots]

    def _exit_description(self, rank: int) -> str:
        proc = self._procs[rank]
        proc.join(1.0)
        code = proc.exitcode
        if code is None:
            return "exit code unknown"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def _error(self, errors: dict[int, RankReport], values: dict[int, Any]) -> RankError:
        return rank_error(f"world of {self.size}", self.size, errors)

    def _hang_message(self, pending: set[int], errors: dict[int, RankReport], waited: float) -> str:
        self._dump_stacks(pending)
        return hang_message(
            f"world of {self.size}",
            "it was torn down and will be respawned",
            self.size,
            pending,
            errors,
            dict(enumerate(self.phases)),
            waited,
            [self._logs(pending)],
        )

    def _crash_message(self, dead: dict[int, str], errors, pending) -> str:
        lines = [
            "rank "
            + ", ".join(f"{r} died ({why}) in phase {self.phases[r]!r}" for r, why in sorted(dead.items())),
            f"[world of {self.size}; it was torn down and will be respawned]",
            rank_statuses(self.size, errors, pending, dict(enumerate(self.phases)), dead),
            self._logs(dead),
        ]
        return "\n".join(lines)

    def _dump_stacks(self, ranks) -> None:
        for r in ranks:
            proc = self._procs[r]
            if proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
        time.sleep(0.5)

    def _logs(self, ranks) -> str:
        out = []
        for r in sorted(ranks):
            path = os.path.join(self.workdir, f"rank{r}.log")
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if text.strip():
                out.append(f"--- rank {r} output (last {_LOG_TAIL} chars) ---\n{text[-_LOG_TAIL:]}")
        return "\n".join(out)

    # -- teardown -----------------------------------------------------------

    def close(self, *, graceful: bool = True, timeout: float = 5.0) -> None:
        """Stop every rank and remove the world's files.

        Graceful: ask each rank to leave the process group and exit, and kill
        those still there after `timeout`.  Otherwise (after a hang, a crash or
        Ctrl-C, when ranks may be stuck in a collective) kill them at once.
        """
        if self.closed:
            return
        self.closed = True
        for conn, proc in zip(self._conns, self._procs):
            if graceful and proc.is_alive():
                try:
                    conn.send(("stop", None))
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + (timeout if graceful else 0.0)
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        for proc in self._procs:
            proc.join(timeout)
        for conn in self._conns:
            conn.close()
        self._store = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def healthy(self) -> bool:
        """Open, with every rank process alive (a rank may die between examples)."""
        return not self.closed and all(p.is_alive() for p in self._procs)

    def death_report(self) -> str:
        """Which ranks are dead, how, and what they last printed."""
        dead = [r for r, p in enumerate(self._procs) if not p.is_alive()]
        how = ", ".join(f"rank {r} ({self._exit_description(r)})" for r in dead)
        return (
            f"world of {self.size}: {how} died between examples, after the last one "
            f"had answered; the world was respawned\n{self._logs(dead)}"
        )

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def __repr__(self) -> str:
        state = "closed" if self.closed else "live"
        return f"<World size={self.size} device={self.device} {state}>"
