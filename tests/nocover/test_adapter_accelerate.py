"""The ``accelerate`` adapter (osdconform/adapters/accelerate.py) against the suites.

A smoke run at world sizes 1 and 2 (one process, and Accelerate's DDP over the
suite's process group) of round trip, resume and errors, in memory and
through ``save_state`` / ``load_state``, passes with nothing failed: what
fails is only what osdconform/expected_failures/accelerate.txt records.
"""

from __future__ import annotations

import re

import pytest

from helpers.suite_runner import run_suite

pytestmark = pytest.mark.slow

pytest.importorskip("accelerate")


def test_accelerate_adapter_passes_a_smoke_run():
    code, out = run_suite(
        "--osd-backend=accelerate", "--osd-world-sizes=1,2", "--hypothesis-profile=smoke", "-p", "no:xdist",
        "-k", "full or storage", target=("test_roundtrip.py", "test_resume.py", "test_errors.py"),
        in_process=False,  # the framework's import stays out of this process
    )
    assert code == 0, out[-4000:]
    assert not re.search(r"\d+ failed", out), out[-4000:]  # "failed as expected" lines are xfails
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 5, out[-4000:]  # roundtrip, resume, errors: full and storage
