"""A process that has imported torch, and runs standalone scripts in forked children.

Started by ``helpers.scripts`` as ``python _script_server.py`` (its own interpreter:
nothing of osdconform, pytest or the tests is imported here, only torch), it
reads one JSON request a line on stdin: ``{"target", "module", "args", "env", "cwd",
"out", "err", "timeout"}``; for each it forks a child that takes the request's
environment and working directory, sends its stdout to the file ``out`` and its
stderr to ``err`` (or ``out``), and runs the target as ``__main__``, a script as
``python script.py args`` does or a module as ``python -m module args`` does
(``sys.argv``, ``sys.path`` with ``PYTHONPATH``); the child
leaves as an interpreter leaves (``SystemExit``'s code, 1 after an uncaught
exception; non-daemon threads joined, atexit handlers run), but for the
teardown of its modules.  The server answers one JSON line
``{"returncode": N}``, negative for a signal as ``subprocess`` reports it, or
``{"returncode": null}`` when the script outlived its timeout; the child's process
group is then killed.

Why: the reproducers' first seconds are ``import torch`` and
``torch.distributed.checkpoint``; forked from here, a script starts with them done.
Only the modules below are imported before a fork, no thread is started and no
tensor op runs (torch's CPU thread pools start at the first parallel op), so a child
starts as a fresh interpreter would, but for those imports and what an interpreter
reads only as it starts (``PYTHONWARNINGS``, ``PYTHONHASHSEED``: the server's).
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
import threading
import time
import traceback

PRELOAD = (
    "torch",
    "torch.distributed",
    "torch.distributed.checkpoint",
    "torch.distributed.checkpoint.state_dict",
    "torch.distributed.fsdp",
    "torch.distributed.tensor",
    "torch.nn.parallel",
    "torch.optim",
    "torch._dynamo",  # an optimizer step imports it (0.5 s); the harness's fork server preloads it too
)


def _pythonpath(env: dict) -> list[str]:
    return [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]


#: ``sys.path`` as the interpreter built it, less its first entry (this file's
#: folder) and the entries ``PYTHONPATH`` put in front: each child puts its own.
_BASE_PATH = [entry for entry in sys.path[1:] if entry not in _pythonpath(os.environ)]


def _child(request: dict) -> None:
    """In the forked child: become the script's process, run it, leave as python leaves."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if request.get("err") else out
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in {out, err, null}:
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin, for its life
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    # As `python script.py` or `python -m module` builds sys.path: the script's
    # folder (the working directory for -m), then PYTHONPATH, then the rest.
    target, module = request["target"], request.get("module", False)
    first = os.getcwd() if module else os.path.dirname(os.path.abspath(target))
    sys.path[:] = [first, *_pythonpath(request["env"]), *_BASE_PATH]
    sys.argv = [target, *request.get("args", [])]
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
        code = 0
    except SystemExit as leaving:
        code = _exit_code(leaving.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _leave_as_python_does(code)


def _exit_code(code: object) -> int:
    """What the interpreter makes of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _leave_as_python_does(code: int) -> None:
    """Wait for non-daemon threads, run atexit handlers, flush, exit with ``code``.

    What an interpreter does at exit, but the teardown of every module after it
    (about 1 s with torch loaded, and nothing of the script's verdict): the
    child leaves through ``os._exit``.  ``threading._shutdown`` is what the
    interpreter itself calls to join non-daemon threads (and run the
    ``concurrent.futures`` exit hooks, which DCP's async save relies on).
    """
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed stream has nothing left to flush
                pass
        os._exit(code)


def _kill(pid: int) -> None:
    """The script and whatever it started (its own process group)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _wait(pid: int, timeout: float, parent: int) -> int | None:
    """The child's exit code; None after killing it at its timeout.

    A server whose test process died (cancelled, killed) takes its script down
    with it and leaves: nothing of a cancelled run outlives it.
    """
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if os.getppid() != parent:
            _kill(pid)
            raise SystemExit(1)
        if time.monotonic() > deadline:
            _kill(pid)
            return None
        time.sleep(0.02)


_running: list[int] = []


def _leave(signum, frame) -> None:
    """SIGTERM or SIGINT (a cancelled run): the running script goes down with the server."""
    if _running:
        _kill(_running[0])
    raise SystemExit(128 + signum)


def main() -> None:
    for name in PRELOAD:
        __import__(name)
    parent = os.getppid()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _leave)
    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                _child(request)  # the child leaves through os._exit ...
            except BaseException:
                # ... unless it failed before its script ran (no such working directory,
                # say): it says why on stderr and leaves here, never back into this loop.
                traceback.print_exc()
            finally:
                os._exit(1)
        try:
            os.setpgid(pid, pid)  # as the child does: whichever runs first, killpg finds the group
        except OSError:
            pass  # the child has already left
        _running[:] = [pid]
        returncode = _wait(pid, request["timeout"], parent)
        _running.clear()
        print(json.dumps({"returncode": returncode}), file=reply, flush=True)


if __name__ == "__main__":
    main()
