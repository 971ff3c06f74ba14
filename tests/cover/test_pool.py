"""The world pool's lifecycle: what each way of failing looks like, and what is left behind.

A conformance run is only trustworthy if a failing example is reported as the
right kind of failure (a property violation is not a crash is not a hang), with
the rank and phase named, and if nothing outlives it: a hung or dead world must
be replaced, not reused, and no rank process may survive its driver - however
the driver ends (closed, SIGKILLed, interrupted with Ctrl-C).

All worlds here have 2 ranks (gloo) and a 5 s example timeout.  Rank-side code
is in ``tests/helpers/rank_tasks.py``.  Scenarios (g) and (h) run a driver in a
subprocess so that it can be killed or interrupted.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import warnings

import pytest

from helpers import rank_tasks as rt
from osdconform.harness import (
    PropertyViolation,
    RankCrash,
    RankDiedBetweenExamples,
    RankError,
    RankHang,
    WorldPool,
)

TIMEOUT = 5.0
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=TIMEOUT) as pool:
        yield pool


def _proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (``Z`` for a zombie), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def _gone(pid: int) -> bool:
    """No longer running: reaped, or a zombie (all of whose threads have exited)."""
    state = _proc_state(pid)
    if state is None:
        return True
    if state not in ("Z", "X"):
        return False
    try:  # a zombie thread-group leader may still have live threads
        return os.listdir(f"/proc/{pid}/task") in ([], [str(pid)])
    except FileNotFoundError:
        return True


def _wait_gone(pids, timeout: float = 5.0) -> list[int]:
    """The pids still running after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if not _gone(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _wait_exited(child: int, timeout: float = 5.0) -> None:
    """Wait until our child process has wholly exited (every thread), without reaping it.

    A zombie thread-group leader in /proc can still have threads, and so open
    files, behind it; ``waitid`` reports the child only once all are gone.
    """
    deadline = time.monotonic() + timeout
    if _parent(child) != os.getpid():
        # Forked from the fork server (harness/_start.py), not our child: its
        # parent reaps it; gone from /proc (or a zombie with no thread) is exited.
        assert _wait_gone([child], timeout) == [], f"process {child} did not exit"
        return
    while os.waitid(os.P_PID, child, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        assert time.monotonic() < deadline, f"process {child} did not exit"
        time.sleep(0.02)


def _healthy(pool: WorldPool) -> list[int]:
    pids = pool.run(2, rt.rank_pid)
    assert len(set(pids)) == 2
    return pids


# -- (a) a property violation: reported, and the world is kept --------------------


def test_violation_names_rank_and_phase_and_keeps_the_world(pool):
    before = _healthy(pool)
    spawned = pool.spawned
    with pytest.raises(PropertyViolation) as info:
        pool.run(2, rt.assert_fails_on, 0, "check")
    exc = info.value
    assert isinstance(exc, AssertionError)  # pytest shows it as a failed check
    msg = str(exc)
    assert msg.startswith("rank 0 found a violation\n"), msg
    assert "[world of 2; AssertionError on rank 0 in phase 'check']" in msg, msg
    assert "rank 0: raised AssertionError in phase 'check'\nrank 1: passed" in msg, msg
    assert "--- remote traceback (rank 0) ---" in msg and "in assert_fails_on" in msg, msg
    assert [(r.rank, r.phase, r.type_name, r.is_assertion) for r in exc.reports] == [
        (0, "check", "AssertionError", True)
    ]
    # Every rank answered, so the world passed its health check and is reused.
    assert _healthy(pool) == before
    assert pool.spawned == spawned


# -- (a') a rank raised while the others wait on it, or still work ----------------------


def test_ranks_left_waiting_by_a_raise_are_reported_once_they_are_idle(pool):
    """The grace period after a rank raised ends once the others are all waiting,
    not working (no runnable thread, no CPU used, for 1 s).

    The grace is 60 s here, not the default 5 s, so that a loaded CI machine (where
    the 1 s of quiet took 4.4 s to see) cannot run it out: only the early end can
    finish the wait in well under the grace, and only it writes the note."""
    _healthy(pool)  # the world is up before the clock starts
    start = time.monotonic()
    with pytest.raises(RankHang) as info:
        pool.world(2).run(rt.raise_then_others, (0, "barrier", 0.0), grace=60.0)
    elapsed = time.monotonic() - start
    msg = str(info.value)
    assert "rank 0 raised ValueError in phase 'raise' and ranks [1] then did not answer" in msg, msg
    assert "ranks [1] were waiting, not working" in msg, msg
    assert elapsed < 30.0, f"waited {elapsed:.1f} s: the early end did not come"
    _healthy(pool)  # a new world


def test_ranks_that_still_work_after_a_raise_get_their_grace(pool):
    """A rank that computes for 2.5 s after another raised (longer than the 1 s
    of quiet that ends the wait) is waited for, and its answer is reported."""
    with pytest.raises(RankError) as info:
        pool.run(2, rt.raise_then_others, 0, "compute", 2.5)
    assert [(r.rank, r.phase, r.type_name) for r in info.value.reports] == [(0, "raise", "ValueError")]
    assert "rank 1: passed" in str(info.value), str(info.value)


# -- (b) a hang: reported with a stack dump, the world replaced --------------------


def test_hang_is_reported_with_stacks_and_the_world_respawned(pool):
    old = _healthy(pool)
    spawned = pool.spawned
    start = time.monotonic()
    with pytest.raises(RankHang) as info:
        pool.run(2, rt.sleep_on, 1, 3600, "stuck")
    elapsed = time.monotonic() - start
    assert TIMEOUT <= elapsed < TIMEOUT + 4, elapsed
    msg = str(info.value)
    assert "ranks [1] did not answer (last phases: rank 1 in 'stuck')" in msg, msg
    assert "rank 0: passed\nrank 1: no answer, last phase 'stuck'" in msg, msg
    assert "it was torn down and will be respawned" in msg, msg
    # faulthandler's dump of rank 1, taken on SIGUSR1 before the kill.
    assert "--- rank 1 output" in msg, msg
    assert "most recent call first" in msg, msg
    assert "rank_tasks.py" in msg and "in sleep_on" in msg, msg
    # The hung world is gone, both ranks of it, and a new one works.
    assert _wait_gone(old) == []
    new = _healthy(pool)
    assert pool.spawned == spawned + 1
    assert not set(new) & set(old)


def test_a_repeat_of_a_hang_fails_early_and_another_hang_waits_the_timeout(pool):
    with pytest.raises(RankHang) as first:
        pool.run(2, rt.sleep_on, 1, 3600, "stuck")
    signature = first.value.signature
    assert signature is not None and signature.phases == ((1, "stuck"),)
    _healthy(pool)  # the hung world's successor is up before the clock starts
    start = time.monotonic()
    with pytest.raises(RankHang) as again:
        pool.run(2, rt.sleep_on, 1, 3600, "stuck", repeat=(signature, 0.5))
    assert time.monotonic() - start < TIMEOUT - 2, "a repeat waited the timeout"
    assert "recognised as a repeat of this test's earlier hang" in str(again.value)
    # Another phase, or another rank, is not that hang: it waits the timeout.
    start = time.monotonic()
    with pytest.raises(RankHang) as other:
        pool.run(2, rt.sleep_on, 0, 3600, "stuck", repeat=(signature, 0.5))
    assert time.monotonic() - start >= TIMEOUT and "recognised" not in str(other.value)
    # A slow example that only passes through the phase is not cut short.
    assert pool.run(2, rt.sleep_on, 1, 1.5, "stuck", repeat=(signature, 2.5)) == [0, 1]


# -- (c), (d) a rank dies: reported with how, the world replaced --------------------


@pytest.mark.parametrize(
    "task, args, how",
    [(rt.exit_on, (1, 7), "exit code 7"), (rt.sigkill_on, (1,), "killed by SIGKILL")],
    ids=["exit-7", "sigkill"],
)
def test_dead_rank_is_reported_and_the_world_respawned(pool, task, args, how):
    old = _healthy(pool)
    spawned = pool.spawned
    start = time.monotonic()
    with pytest.raises(RankCrash) as info:
        pool.run(2, task, *args)
    assert time.monotonic() - start < TIMEOUT  # a death is seen at once, not at the timeout
    msg = str(info.value)
    assert msg.startswith(f"rank 1 died ({how}) in phase "), msg
    assert f"rank 1: died ({how})" in msg, msg
    assert "it was torn down and will be respawned" in msg, msg
    # The surviving rank went with its world.
    assert _wait_gone(old) == []
    new = _healthy(pool)
    assert pool.spawned == spawned + 1
    assert not set(new) & set(old)


# -- (e) a task that cannot be unpickled on the ranks ---------------------------------


def test_argument_that_fails_to_unpickle_is_a_rank_error(pool):
    before = _healthy(pool)
    spawned = pool.spawned
    start = time.monotonic()
    with pytest.raises(RankError) as info:
        pool.run(2, rt.echo, rt.FailsToUnpickle())
    assert time.monotonic() - start < TIMEOUT  # reported, not waited out as a hang
    exc = info.value
    assert not isinstance(exc, PropertyViolation)
    msg = str(exc)
    assert msg.startswith("FailsToUnpickle cannot be rebuilt on a rank\n"), msg
    assert "RuntimeError on rank 0 in phase 'receive task'" in msg, msg
    assert {(r.rank, r.phase) for r in exc.reports} == {(0, "receive task"), (1, "receive task")}
    assert _healthy(pool) == before
    assert pool.spawned == spawned


def test_function_from_a_module_the_ranks_cannot_import_is_a_rank_error(pool, monkeypatch):
    ghost = types.ModuleType("osdconform_test_ghost_module")
    exec("def task(ctx):\n    return 'ran'\n", ghost.__dict__)
    monkeypatch.setitem(sys.modules, ghost.__name__, ghost)
    before = _healthy(pool)
    start = time.monotonic()
    with pytest.raises(RankError) as info:
        pool.run(2, ghost.task)
    assert time.monotonic() - start < TIMEOUT
    msg = str(info.value)
    assert "No module named 'osdconform_test_ghost_module'" in msg, msg
    assert "ModuleNotFoundError on rank 0 in phase 'receive task'" in msg, msg
    assert _healthy(pool) == before


# -- a rank that dies while idle ----------------------------------------------------


def test_rank_that_died_between_examples_is_reported_and_replaced(pool):
    """No example owns a death that happens after the last answer: the next
    example runs on a fresh world, and the death is reported as a warning."""
    old = _healthy(pool)
    spawned = pool.spawned
    pool.run(2, rt.exit_later, 1, 0.2, 3)
    _wait_exited(old[1])
    with pytest.warns(RankDiedBetweenExamples, match=r"rank 1 \(exit code 3\) died between examples"):
        new = pool.run(2, rt.rank_pid)
    assert pool.spawned == spawned + 1
    assert set(new).isdisjoint(old)


# -- (f) close -----------------------------------------------------------------------


def test_close_reaps_every_rank_and_removes_the_workdir(pool):
    """Closes the module's pool; a later test (if any) gets a fresh world from it."""
    pids = _healthy(pool)
    world = pool.world(2)
    assert os.path.isdir(world.workdir)
    assert all(_proc_state(p) not in (None, "Z") for p in pids)
    pool.close()
    assert world.closed
    # The ranks were our children and were joined: not even zombies remain.
    for pid in pids:
        assert _proc_state(pid) is None, (pid, _proc_state(pid))
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not os.path.exists(world.workdir)


# -- (g), (h) the driver itself goes away -----------------------------------------------

_DRIVER = """
import faulthandler, signal
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks if it hangs
from helpers import rank_tasks as rt
from osdconform.harness import WorldPool

with WorldPool(timeout=600) as pool:
    pids = pool.run(2, rt.rank_pid)
    print("PIDS", *pids, flush=True)
    print("WORKDIR", pool.world(2).workdir, flush=True)
    print("RUNNING", flush=True)
    pool.run(2, rt.sleep_on, None, 3600, "long task")
"""


class _Driver:
    """A driver process running `_DRIVER`, whose stdout lines we can wait for."""

    def __init__(self, *, new_session: bool = False, tmpdir: str | None = None) -> None:
        env = dict(os.environ)
        if tmpdir is not None:  # a private temporary folder: no other run's pool sweeps its world
            env["TMPDIR"] = tmpdir
        env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True),
        ]
        for t in self._pumps:
            t.start()
        self.pids: list[int] = []
        self.workdir = ""

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def expect(self, word: str, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"driver did not print {word} in {timeout} s; stderr:\n" + "\n".join(self.stderr)
                ) from None
            first, *rest = line.split()
            if first == "PIDS":
                self.pids = [int(p) for p in rest]
            elif first == "WORKDIR":
                self.workdir = rest[0]
            if first == word:
                return rest

    def wait(self, timeout: float) -> int:
        """Wait for the driver to exit and for the last of its output.

        If it does not exit, the assertion says where it is: its signal masks,
        its children, and every thread's stack (faulthandler on SIGUSR1)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            diagnosis = f"driver did not exit in {timeout} s\n" + self.diagnose()
            # Also as a warning: the summary shows it even where the test is an expected failure.
            warnings.warn(UserWarning(diagnosis), stacklevel=2)
            raise AssertionError(diagnosis) from None
        for t in self._pumps:
            t.join(5)
        return code

    def diagnose(self) -> str:
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/status") as f:
                status = [ln.strip() for ln in f if ln.startswith(("State", "Sig", "Shd", "Threads"))]
        except OSError:
            status = ["(no /proc status)"]
        children = subprocess.run(["ps", "-o", "pid,stat,wchan:20,args", "--ppid", str(pid)],
                                  capture_output=True, text=True).stdout
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        return "\n".join([*status, "children:", children, "stderr:", *self.stderr])

    def cleanup(self) -> None:
        """Leave nothing behind even if the test failed half-way."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pid in self.pids:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        if os.path.basename(self.workdir).startswith("osdconform-w"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def test_no_orphans_when_the_driver_is_sigkilled(tmp_path, monkeypatch):
    """The ranks are busy in a task (not reading their pipes), so only the kernel
    (``PR_SET_PDEATHSIG``) can tell them that their driver is gone.

    The driver's world lives in a temporary folder of this test's own, and so does
    the pool that sweeps it: another osdconform run on the machine starting a pool
    meanwhile would sweep a dead driver's world from the shared one first."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    driver = _Driver(tmpdir=str(tmp_path))
    try:
        driver.expect("RUNNING")
        assert len(driver.pids) == 2 and not any(_gone(p) for p in driver.pids)
        assert os.path.dirname(driver.workdir) == str(tmp_path), driver.workdir
        time.sleep(0.5)  # let the ranks start sleeping in the task
        driver.proc.send_signal(signal.SIGKILL)
        driver.wait(10)
        assert _wait_gone(driver.pids, timeout=5) == [], "ranks outlived their SIGKILLed driver"
        # Nobody could remove its world's directory; the next pool sweeps it.
        assert os.path.isdir(driver.workdir)
        WorldPool().close()
        assert not os.path.exists(driver.workdir), "a dead driver's workdir was not swept"
    finally:
        driver.cleanup()


@pytest.mark.xfail(
    strict=False,
    reason="open (issue 16, item 5): in four whole README test runs of 2026-12-06 the driver did not exit "
    "after Ctrl-C (90 s waited); alone, or with its file, it exits in about 1 s, and it did in the three "
    "whole runs since; if it hangs, the warnings summary has the driver's signal masks and stacks",
)
def test_ctrl_c_tears_the_world_down():
    driver = _Driver(new_session=True)
    try:
        driver.expect("RUNNING")
        assert len(driver.pids) == 2 and os.path.isdir(driver.workdir), driver.workdir
        assert os.path.basename(driver.workdir).startswith("osdconform-w2-")
        time.sleep(2)  # let the driver enter the wait for the long task (a loaded machine is slow)
        os.killpg(driver.proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        # What is checked is that the world goes, not how fast (bench/ measures speed); see
        # the xfail's reason: in the whole test run the driver has hung here.
        driver.wait(30)
        err = "\n".join(driver.stderr)
        # Interrupted inside WorldPool.run, and died of the SIGINT like any Python program.
        assert "KeyboardInterrupt" in err and "_pool.py" in err, err
        assert driver.proc.returncode == -signal.SIGINT, (driver.proc.returncode, err)
        assert _wait_gone(driver.pids, timeout=5) == [], "ranks outlived an interrupted driver"
        assert not os.path.exists(driver.workdir), "the world's workdir was left behind"
    finally:
        if driver.proc.poll() is None:
            os.killpg(driver.proc.pid, signal.SIGKILL)
        driver.cleanup()
