"""The shipped torchtitan adapter, run against the suites in a pytest subprocess (smoke profile).

Skipped where torchtitan is not installed (the lean install: README,
"Framework adapters", ``torchtitan``).  Round trip (every in-memory form and
storage), flatten, resume and errors at world sizes 1 and 2 must pass with
nothing failed: torchtitan's recorded defects
(``osdconform/expected_failures/torchtitan.txt``) count as expected failures,
and the forms it does not declare (cpu_offload, broadcast_from_rank0) are
skipped as unsupported.
"""

from __future__ import annotations

import re

import pytest

from helpers.suite_runner import run_suite

pytestmark = pytest.mark.slow


def test_the_torchtitan_adapter_passes_a_smoke_run():
    pytest.importorskip("torchtitan")
    code, out = run_suite(
        "--osd-backend=torchtitan", "--osd-world-sizes=1,2", "--hypothesis-profile=smoke",
        "--osd-timeout=120", "-p", "no:xdist", "-rs",
        target=("test_roundtrip.py", "test_flatten.py", "test_resume.py", "test_errors.py"),
        timeout=1800,
        in_process=False,  # the framework's import stays out of this process
    )
    assert code == 0, out[-4000:]
    assert not re.search(r"\b\d+ failed\b", out), out[-4000:]  # "N example(s) failed as expected" is fine
    passed = re.search(r"(\d+) passed", out)
    # roundtrip: full, sharded, full+flatten, sharded+flatten, storage, storage+async_save;
    # flatten: 2; resume: 3; errors: 2.
    assert passed and int(passed.group(1)) == 13, out[-4000:]
    assert "unsupported by backend 'torchtitan': option cpu_offload not supported" in out, out[-4000:]
