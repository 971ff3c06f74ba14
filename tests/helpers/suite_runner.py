"""Run a suite in a pytest subprocess, as a user would.

Used by the tests in tests/nocover that show how the suite behaves on
seeded faults and expected-failure files.  ``tests/`` is put on the
subprocess's PYTHONPATH so ``helpers.faulty_backends:<Fault>`` resolves there and in
its spawned ranks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
SUITES = os.path.join(ROOT, "suites")


def run_suite(
    *args: str, target: str | tuple[str, ...] = "test_roundtrip.py", timeout: float = 600
) -> tuple[int, str]:
    """Exit code and combined output of ``pytest suites/<target> *args``.

    `target` is a suite file, optionally with a test id (``test_types.py::test_types[full]``),
    or a tuple of them.
    """
    targets = (target,) if isinstance(target, str) else target
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory(prefix="osdconform-test-repro-") as scratch:
        if not any(a.startswith("--osd-repro-dir") for a in args):
            # Reproducer scripts of these deliberate failures go to a scratch folder, not the clone.
            args = (*args, f"--osd-repro-dir={scratch}")
        cmd = [
            sys.executable, "-m", "pytest", *(os.path.join(SUITES, t) for t in targets),
            "-p", "no:cacheprovider", "-q", "--tb=short", *args,
        ]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr
