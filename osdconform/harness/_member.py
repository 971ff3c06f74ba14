"""One rank's membership of the scale-out world under torchrun (`ScaleOutMember`).

Why its own module: every rank, rank 0 included, joins the world the same
way (the launcher's store, one process group), runs its share of each task in
a daemon thread and answers stack requests; ranks > 0 then `serve` until rank
0 says stop.  That is the rank's side of the protocol ``_scaleout.py``
describes; rank 0's driving side (`ScaleOutPool`) is there.
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
from ._errors import RankReport
from ._worker import RankConfig, RankContext


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
            while not _poll(lambda key=key: store.check([key]) or store.check(["shutdown"]),
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
