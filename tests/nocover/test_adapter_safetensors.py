"""The ``safetensors`` adapter (osdconform/adapters/safetensors.py) against the storage suites.

A smoke run at world sizes 1 and 2 through every suite that has a storage
form (round trip, reshard, resume, schedulers, types, side effects, errors:
truncated and corrupted files, another optimizer's state) passes with
nothing failed, and runs examples (not everything unsupported).
"""

from __future__ import annotations

import re

import pytest

from helpers.suite_runner import run_suite

pytestmark = pytest.mark.slow

pytest.importorskip("safetensors")

STORAGE_SUITES = (
    "test_roundtrip.py", "test_reshard.py", "test_resume.py", "test_schedulers.py",
    "test_types.py", "test_side_effects.py", "test_errors.py",
)


def test_safetensors_adapter_passes_a_smoke_run():
    code, out = run_suite(
        "--osd-backend=safetensors", "--osd-world-sizes=1,2", "--hypothesis-profile=smoke", "-p", "no:xdist",
        "-k", "storage", target=STORAGE_SUITES,
        in_process=False,  # the framework's import stays out of this process
    )
    assert code == 0, out[-4000:]
    assert not re.search(r"\d+ failed", out), out[-4000:]  # "failed as expected" lines are xfails
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) == len(STORAGE_SUITES), out[-4000:]  # storage+async_save: unsupported
