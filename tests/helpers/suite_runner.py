"""Run a suite as a user would: a nested pytest session, in this process or in a subprocess.

Used by the tests in tests/nocover that show how the suite behaves on seeded
faults and expected-failure files.  ``tests/`` is on ``sys.path`` here (and so
in every rank, which gets its driver's path), and on a subprocess's
PYTHONPATH, so ``helpers.faulty_backends:<Fault>`` resolves everywhere.

In this process by default: a nested ``pytest.main`` reuses what this process
has already paid for (torch and osdconform imported, the fork server its ranks
come from), where a subprocess paid 5-7 s of start-up per run, the largest
share of a short fault run.  What a nested session changes globally is put
back (the working directory, Hypothesis's profile), and a watchdog ends this
process with every thread's stack if a run outlives `timeout`, as the
subprocess's timeout did.  ``in_process=False`` keeps a subprocess where the
process is the point, or where a framework's import must not reach this one
(the framework adapters).
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import subprocess
import sys
import tempfile

import pytest
from hypothesis import settings

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
SUITES = os.path.join(ROOT, "suites")


def run_suite(
    *args: str,
    target: str | tuple[str, ...] = "test_roundtrip.py",
    timeout: float = 600,
    in_process: bool = True,
) -> tuple[int, str]:
    """Exit code and combined output of ``pytest suites/<target> *args``.

    `target` is a suite file, optionally with a test id (``test_types.py::test_types[full]``),
    or a tuple of them.
    """
    targets = (target,) if isinstance(target, str) else target
    with tempfile.TemporaryDirectory(prefix="osdconform-test-repro-") as scratch:
        if not any(a.startswith("--osd-repro-dir") for a in args):
            # Reproducer scripts of these deliberate failures go to a scratch folder, not the clone.
            args = (*args, f"--osd-repro-dir={scratch}")
        argv = [*(os.path.join(SUITES, t) for t in targets), "-p", "no:cacheprovider", "-q", "--tb=short", *args]
        if in_process:
            return _nested(argv, timeout)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    return proc.returncode, proc.stdout + proc.stderr


def _current_profile() -> str:
    # The public getter where this Hypothesis has it (osdconform takes 6.100 on), else what it reads.
    getter = getattr(settings, "get_current_profile_name", None)
    return getter() if getter is not None else settings._current_profile


def _nested(argv: list[str], timeout: float) -> tuple[int, str]:
    """``pytest.main(argv)`` from ROOT, its terminal output captured, this process left as it was.

    The nested session is a user's plain run, not an xdist worker of ours: the
    variables xdist gives its workers are hidden from it (pytest-benchmark, for
    one, reads them)."""
    out = io.StringIO()
    cwd, profile = os.getcwd(), _current_profile()
    xdist_env = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("PYTEST_XDIST_")}
    faulthandler.dump_traceback_later(timeout, exit=True, file=sys.__stderr__)
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = pytest.main(argv)
    finally:
        faulthandler.cancel_dump_traceback_later()
        os.chdir(cwd)
        os.environ.update(xdist_env)
        settings.load_profile(profile)
    return int(code), out.getvalue()
