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
from pathlib import Path

_SERVER = Path(__file__).with_name("_script_server.py")
_server: subprocess.Popen | None = None


def _started() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen(
            [sys.executable, str(_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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


def run_script(script: Path | str, *, env: dict[str, str] | None = None, timeout: float = 120):
    """Run ``script`` to its end: a ``CompletedProcess`` whose ``stdout`` holds stdout and stderr.

    ``returncode`` is negative for a signal, as ``subprocess.run`` reports it; a
    script that outlives ``timeout`` is killed with everything it started, and
    ``subprocess.TimeoutExpired`` raised, as ``subprocess.run`` does.
    """
    server = _started()
    with tempfile.TemporaryDirectory(prefix="osdconform-script-") as tmp:
        out = Path(tmp) / "output"
        request = {
            "script": str(Path(script).resolve()), "env": dict(os.environ if env is None else env),
            "cwd": os.getcwd(), "out": str(out), "timeout": timeout,
        }
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        answer = server.stdout.readline()
        if not answer:
            raise RuntimeError(f"the script server died running {script} (exit {server.wait()})")
        returncode = json.loads(answer)["returncode"]
        output = out.read_text(errors="replace") if out.exists() else ""
    if returncode is None:
        raise subprocess.TimeoutExpired([sys.executable, str(script)], timeout, output=output)
    return subprocess.CompletedProcess([sys.executable, str(script)], returncode, output, "")
