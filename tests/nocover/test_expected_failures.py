"""Expected failures: a matching failure is tolerated, anything else is not.

Runs the real round-trip suite in a pytest subprocess with an
expected-failures file written by the test, against a seeded fault
(tests/faulty_backends.py) or the fault-free reference.  Then checks the
shipped files: every entry names a reproducer that exists, and every
reproducer still reproduces (exits 1) on the installed torch.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from _suite_runner import run_suite
from osdconform._xfails import SHIPPED_DIR, load_xfails

pytestmark = pytest.mark.slow


def run(backend: str, xfails_text: str, tmp_path) -> tuple[int, str]:
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(xfails_text)
    return run_suite(
        "-k", "test_roundtrip and full and none", f"--osd-backend={backend}",
        "--osd-world-sizes=1", "--hypothesis-profile=ci", f"--osd-xfails={xfails}",
    )


def test_matching_failures_are_expected_and_counted(tmp_path):
    code, out = run(
        "faulty_backends:DropsStateOnSet",
        "# with a step, the fault drops exp_avg_sq (Adam) or momentum_buffer (SGD: then no state at all)\n"
        "roundtrip | o.full and s.steps > 0 | keys differ: missing | seeded fault | tests/faulty_backends.py\n",
        tmp_path,
    )
    assert code == 0, out[-4000:]
    assert re.search(r"\b1 passed\b", out), out[-2000:]
    counted = re.search(r"(\d+) example\(s\) failed as expected: .*xfails\.txt:2: roundtrip", out)
    assert counted and int(counted.group(1)) >= 1, out[-2000:]


def test_a_failure_without_the_entry_text_is_a_real_failure(tmp_path):
    code, out = run(
        "faulty_backends:DropsStateOnSet",
        "roundtrip | o.full | values differ | an unrelated known bug | n/a\n",
        tmp_path,
    )
    assert code == 1, out[-4000:]
    assert re.search(r"\b1 failed\b", out) and "keys differ: missing" in out, out[-4000:]


def test_an_entry_that_now_passes_is_an_xpass_and_fails(tmp_path):
    code, out = run(
        "reference",
        "roundtrip | s.world_size == 1 | anything | a bug that was fixed | n/a\n",
        tmp_path,
    )
    assert code == 1, out[-4000:]
    assert "XPASS: this example passed though an expected failure covers it" in out, out[-4000:]
    assert "xfails.txt:1: roundtrip where s.world_size == 1" in out, out[-4000:]


# --- the shipped entries and their reproducers --------------------------------

SHIPPED = sorted(p for p in SHIPPED_DIR.glob("*.txt"))
REPRO_DIR = SHIPPED_DIR / "repro"
SHIPPED_REPROS = sorted(REPRO_DIR.glob("*.py"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_entry_names_a_reproducer_script_that_exists(path):
    entries = load_xfails(path)
    assert entries, f"{path} has no entries"
    for entry in entries:
        script = (path.parent / entry.reproducer).resolve()
        assert script.is_file(), f"{entry.where}: reproducer {entry.reproducer!r} is not a file"


def test_every_reproducer_script_is_used_by_an_entry():
    used = {(p.parent / e.reproducer).resolve() for p in SHIPPED for e in load_xfails(p)}
    unused = [s.name for s in SHIPPED_REPROS if s.resolve() not in used]
    assert not unused, f"reproducers no entry names: {unused}"


@pytest.mark.parametrize("script", SHIPPED_REPROS, ids=lambda p: p.stem)
def test_shipped_reproducer_fails_while_the_bug_exists(script):
    """Each reproducer exits 1 on this torch; exit 0 means torch fixed it: drop the entry."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, (
        f"{script.name} exited 0 on torch {torch.__version__}: the bug looks fixed; "
        f"remove its entries and the script\n{out[-2000:]}"
    )
    assert proc.returncode == 1, f"{script.name} crashed (exit {proc.returncode}) instead of reproducing:\n{out[-3000:]}"
