"""The shipped ``deepspeed`` adapter (osdconform/adapters/deepspeed.py) against the suites.

A smoke run (5 examples a test, world sizes 1 and 2) of the storage forms of
the round-trip, resume and error suites, through DeepSpeed's engine: ZeRO
stage 2 under plan ``zero`` (the default) and stage 0 under plan ``ddp``.
Nothing may fail; expected failures are the shipped file's (deepspeed.txt).
Skipped where DeepSpeed is not installed.
"""

from __future__ import annotations

import os
import re

import pytest

from helpers.suite_runner import run_suite

pytestmark = pytest.mark.slow

pytest.importorskip("deepspeed")

TARGETS = ("test_roundtrip.py", "test_resume.py", "test_errors.py")


@pytest.mark.parametrize("spec", ["deepspeed", "deepspeed(stage=0)"])
def test_deepspeed_adapter_passes_a_smoke_run(spec, tmp_path, monkeypatch):
    # DeepSpeed compiles a small C++ op once; keep it out of the user's cache.
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "torch_extensions"))
    code, out = run_suite(
        f"--osd-backend={spec}", "--osd-world-sizes=1,2", "--hypothesis-profile=smoke",
        "--osd-timeout=180", "-p", "no:xdist", "-k", "storage and not async_save", target=TARGETS, timeout=1800,
        in_process=False,  # the framework's import stays out of this process
    )
    assert code == 0, out[-4000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) == len(TARGETS), out[-4000:]
    assert "failed" not in out, out[-4000:]
