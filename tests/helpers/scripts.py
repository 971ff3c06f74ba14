"""Run a standalone script as ``python script.py`` would, with torch already imported.

The shipped reproducers and the release floors' probes are scripts that use torch
alone; each was a fresh interpreter, and most of its 3-6 s went to ``import torch``
and ``torch.distributed.checkpoint`` before its first line of its own (62 of them:
about 250 s of a README test run's worker time).  Here each test process keeps one
server (``_script_server.py``, its own interpreter, which imports those torch
modules and nothing of osdconform, pytest or the tests) and every script runs in a
child forked from it, as ``__main__``, with the environment, working directory,
``sys.argv`` and ``sys.path[0]`` that ``python script.py`` gives it.  The script's
process is still separate from the test's, and holds only what the script imports.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

_SERVER = Path(__file__).with_name("_script_server.py")
_server: subprocess.Popen | None = None


def _started() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        # In a folder of its own: the test's working directory may be a temporary
        # one, gone before the server is (each script gets its own anyway).
        _server = subprocess.Popen(
            [sys.executable, str(_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=_SERVER.parent,
        )
        ready = _server.stdout.readline()
        if json.loads(ready or "{}").get("ready") is not True:
            raise RuntimeError(f"the script server did not start (exit {_server.wait()})")
        atexit.register(_stop, _server)
    return _server


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _run(target: str, *, module: bool, args=(), env=None, cwd=None, timeout: float | None, split: bool):
    """(returncode or None after a timeout, stdout, stderr): the server's run of ``target``."""
    server = _started()
    with tempfile.TemporaryDirectory(prefix="osdconform-script-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        request = {
            "target": target, "module": module, "args": [os.fspath(a) for a in args],
            "env": dict(os.environ if env is None else env), "cwd": os.fspath(cwd or os.getcwd()),
            "out": str(out), "err": str(err) if split else None,
            "timeout": 24 * 3600 if timeout is None else timeout,
        }
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        answer = server.stdout.readline()
        if not answer:
            raise RuntimeError(f"the script server died running {target} (exit {server.wait()})")
        read = lambda path: path.read_text(errors="replace") if path.exists() else ""  # noqa: E731
        return json.loads(answer)["returncode"], read(out), read(err)


def run_script(script: Path | str, *, env: dict[str, str] | None = None, timeout: float = 120):
    """Run ``script`` to its end: a ``CompletedProcess`` whose ``stdout`` holds stdout and stderr.

    ``returncode`` is negative for a signal, as ``subprocess.run`` reports it; a
    script that outlives ``timeout`` is killed with everything it started, and
    ``subprocess.TimeoutExpired`` raised, as ``subprocess.run`` does.
    """
    script = str(Path(script).resolve())
    returncode, output, _ = _run(script, module=False, env=env, timeout=timeout, split=False)
    if returncode is None:
        raise subprocess.TimeoutExpired([sys.executable, script], timeout, output=output)
    return subprocess.CompletedProcess([sys.executable, script], returncode, output, "")


def runpytest_subprocess(pytester: pytest.Pytester, *args, timeout: float | None = None) -> pytest.RunResult:
    """``pytester.runpytest_subprocess(*args)``, its pytest forked from the server.

    The same run as pytester's: ``python -m pytest`` in ``pytester.path`` with a
    ``--basetemp`` of its own, pytester's plugins as ``-p``, the working directory
    in front of ``PYTHONPATH``, no stdin; pytest, Hypothesis and osdconform are
    imported by the run itself (option parsing, profile loading and the entry
    point happen as for a user), only torch is there already.
    """
    basetemp = tempfile.mkdtemp(prefix="runpytest-", dir=pytester.path)
    args = (f"--basetemp={basetemp}", *args)
    for plugin in pytester.plugins:
        if not isinstance(plugin, str):
            raise ValueError(f"only plugins named by a string can be passed to a subprocess: {plugin!r}")
        args = ("-p", plugin, *args)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH", "")]))
    start = time.monotonic()
    returncode, out, err = _run("pytest", module=True, args=args, env=env, timeout=timeout, split=True)
    if returncode is None:
        raise pytester.TimeoutExpired(f"{timeout} second timeout expired running: pytest {' '.join(map(str, args))}")
    print(out, end="")
    print(err, end="", file=sys.stderr)
    return pytest.RunResult(returncode, out.splitlines(), err.splitlines(), time.monotonic() - start)
