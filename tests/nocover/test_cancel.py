"""A cancelled run leaves nothing behind: no process, no world or checkpoint directory.

CI runners cancel with SIGTERM, to pytest or to its whole process group; a
worker can also be killed outright.  Each case starts the suites under
pytest-xdist in a session of its own, with a private TMPDIR (so what it
leaves is its own), cancels it once worlds are running, and then looks for
any process of that session and any ``osdconform-*`` directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.suite_runner import ROOT, SUITES

pytestmark = pytest.mark.slow


def _start(tmp_path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    cmd = [sys.executable, "-m", "pytest", os.path.join(SUITES, "test_roundtrip.py"), "-p", "no:cacheprovider",
           "-q", "-n", "2", "--hypothesis-profile=ci", "--osd-world-sizes=2", "--osd-progress=off",
           f"--osd-repro-dir={tmp_path / 'repro'}", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_worlds(tmp_path, proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(n.startswith("osdconform-w") for n in os.listdir(tmp_path)):
            time.sleep(2.0)  # examples under way
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no world started")


def _session_processes(sid: int) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # pgrp; zombies are already gone
            found.append(pid)
    return found


def _leftovers(tmp_path) -> list[str]:
    return sorted(n for n in os.listdir(tmp_path) if n.startswith("osdconform-"))


def _assert_clean(tmp_path, proc) -> str:
    out, _ = proc.communicate(timeout=120)
    deadline = time.monotonic() + 15
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session_processes(proc.pid), out
    assert not _leftovers(tmp_path), (_leftovers(tmp_path), out)
    return out


@pytest.mark.parametrize("target", ["group", "pytest"])
def test_sigterm_cleans_up_as_ctrl_c_does(tmp_path, target):
    proc = _start(tmp_path)
    try:
        _wait_for_worlds(tmp_path, proc)
        if target == "group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        out = _assert_clean(tmp_path, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, out  # cancelled, not passed
    assert "KeyboardInterrupt" in out or "Interrupted" in out, out


def _xdist_workers(controller: int) -> list[int]:
    workers = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == controller:
            workers.append(int(pid))
    return workers


def test_a_killed_xdist_worker_leaves_nothing_once_the_run_ends(tmp_path):
    proc = _start(tmp_path)
    try:
        _wait_for_worlds(tmp_path, proc)
        workers = _xdist_workers(proc.pid)
        assert workers
        os.kill(workers[0], signal.SIGKILL)
        _assert_clean(tmp_path, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
