"""The rank side of a world: join the process group once, then serve tasks.

A rank process lives as long as its world.  It runs tasks one at a time: each
task is a picklable ``(fn, args, kwargs)``; ``fn(ctx, *args, **kwargs)`` runs
with a `RankContext` and its return value (or a report of what it raised)
goes back to the driver.  While a task runs, ``ctx.phase(name)`` tells the
driver what the rank is doing, so a hang can be attributed to a phase.

The rank dies with its driver (``PR_SET_PDEATHSIG``), ignores Ctrl-C (the
driver owns teardown), and writes its stdout/stderr to a log file that the
driver reads when a rank hangs or dies; SIGUSR1 dumps its Python stacks there.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import pickle
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator

from ._errors import RankReport

# Messages, rank -> driver: ("ready", None) | ("done", value)
#                           | ("error", RankReport) | ("start-error", text)
# Messages, driver -> rank: ("task", Task) | ("stop", None)
# Phases are not messages: each rank writes its current phase into a shared
# slot of PHASE_BYTES bytes that the driver reads when it needs to explain.
PHASE_BYTES = 256


@dataclass(frozen=True)
class Task:
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RankConfig:
    rank: int
    world_size: int
    device: str
    store_host: str
    store_port: int
    log_path: str
    workdir: str
    pg_timeout_s: float
    #: The rank's whole environment, set before torch touches a device: the driver's
    #: as it is when the world starts (a rank forked from the fork server would
    #: otherwise have the server's, from when it started), plus `WorldPool`'s ``env``
    #: (``CUDA_VISIBLE_DEVICES=""``: a CPU world that sees no GPU).
    env: tuple[tuple[str, str], ...] = ()


class RankContext:
    """What a task sees of its rank: identity, device, phase reporting, scratch space."""

    def __init__(self, config: RankConfig, device: Any, phase_slot: Any) -> None:
        self.rank = config.rank
        self.world_size = config.world_size
        self.device = device
        self._phase_slot = phase_slot
        self._workdir = config.workdir
        self._config = config
        self._tmpdir: str | None = None
        self._restart_store: Any = None  # one connection to the driver's store, for every restart
        self.current_phase = "start"

    def set_phase(self, name: str) -> None:
        self.current_phase = name
        self._phase_slot.value = name.encode("utf-8")[: PHASE_BYTES - 1]

    @property
    def tmpdir(self) -> str:
        """A scratch directory for this task only (made on first use, removed after)."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix=f"task-r{self.rank}-", dir=self._workdir)
        return self._tmpdir

    def restart_process_group(self, tag: str) -> None:
        """Destroy every process group of this world and join a new default one:
        the same ranks, a fresh group, as a job restarted in place does (an
        elastic or fault-tolerant trainer that keeps its processes).

        Collective: every rank calls it with the same `tag`, unique to the
        restart (it names the new group's keys in the driver's store).  What
        was built over the old groups (meshes, FSDP and DDP modules, DTensors)
        is dead afterwards; later tasks on this world use the new group.
        """
        import torch.distributed as dist

        from ._devices import device_kind

        config = self._config
        dist.barrier()  # no rank leaves the old group while another still uses it
        dist.destroy_process_group()
        timeout = timedelta(seconds=config.pg_timeout_s)
        if self._restart_store is None:
            self._restart_store = dist.TCPStore(
                config.store_host, config.store_port, is_master=False, timeout=timeout
            )
        dist.init_process_group(
            device_kind(config.device).pg_backend,
            store=dist.PrefixStore(f"osdconform-restart/{tag}", self._restart_store),
            rank=self.rank,
            world_size=self.world_size,
            timeout=timeout,
        )

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Mark a phase of the task; a hang or error inside it is reported under `name`."""
        self.set_phase(name)
        yield

    @contextlib.contextmanager
    def _task_scope(self) -> Iterator[None]:
        self.set_phase("start")
        try:
            yield
        finally:
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None


def die_with_driver(driver_pid: int) -> None:
    """End this rank when its driver dies, even by SIGKILL.

    Started with ``spawn``, the rank's parent is the driver: Linux SIGKILLs it
    when the parent dies (``PR_SET_PDEATHSIG``).  Forked from the fork server
    (``_start.py``), its parent is the server, which outlives the driver as
    long as any of its children live (multiprocessing hands each child the
    server's "alive" pipe); so the rank watches the driver itself, from a
    thread that waits on a pidfd of it (a poll where there is none).  The
    server then exits with its last child.  If the driver is already gone,
    exit now."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if not _alive(driver_pid):  # died before prctl took effect
        os._exit(1)
    if os.getppid() != driver_pid:
        threading.Thread(target=_exit_when_gone, args=(driver_pid,), name="osdconform-driver-watch", daemon=True).start()


def _exit_when_gone(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel or not Linux): poll
        while _alive(pid):
            time.sleep(0.5)
    else:
        select.select([fd], [], [])  # readable once the process has exited
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _redirect_output(log_path: str) -> Any:
    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    faulthandler.enable(file=log)
    faulthandler.register(signal.SIGUSR1, file=log, all_threads=True)
    return log


def _report(ctx: RankContext | None, rank: int, exc: BaseException) -> RankReport:
    return RankReport.from_exception(rank, ctx.current_phase if ctx is not None else "receive task", exc)


def rank_main(config: RankConfig, conn: Any, phase_slot: Any, parent_pid: int) -> None:
    """Entry point of a rank process (started by `World`; `parent_pid` is the driver's pid)."""
    die_with_driver(parent_pid)
    if config.env:
        os.environ.clear()
        os.environ.update(dict(config.env))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _redirect_output(config.log_path)
    try:
        import torch
        import torch.distributed as dist

        from ._devices import device_kind

        torch.set_num_threads(1)  # ranks share the machine's cores
        kind = device_kind(config.device)
        device = kind.setup(config.rank)
        timeout = timedelta(seconds=config.pg_timeout_s)
        store = dist.TCPStore(
            config.store_host, config.store_port, is_master=False, timeout=timeout
        )
        dist.init_process_group(
            kind.pg_backend,
            store=dist.PrefixStore("osdconform", store),
            rank=config.rank,
            world_size=config.world_size,
            timeout=timeout,
        )
    except BaseException:
        conn.send(("start-error", traceback.format_exc()))
        return
    ctx = RankContext(config, device, phase_slot)
    conn.send(("ready", None))
    try:
        _serve(ctx, conn)
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def _serve(ctx: RankContext, conn: Any) -> None:
    while True:
        try:
            kind, task = conn.recv()
        except EOFError:
            return  # the driver went away
        except BaseException as exc:  # the task did not unpickle here
            _send(conn, ("error", _report(None, ctx.rank, exc)))
            continue
        if kind == "stop":
            return
        with ctx._task_scope():
            try:
                value = task.fn(ctx, *task.args, **task.kwargs)
            except BaseException as exc:
                _send(conn, ("error", _report(ctx, ctx.rank, exc)))
                continue
        try:
            ctx.set_phase("send result")
            _send(conn, ("done", value))
        except Exception as exc:
            _send(conn, ("error", _report(ctx, ctx.rank, exc)))


def _send(conn: Any, message: Any) -> None:
    """Send by value with plain pickle (see `_world._pickle` for why not ForkingPickler)."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
