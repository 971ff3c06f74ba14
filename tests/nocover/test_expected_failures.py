"""Expected failures: a matching failure is tolerated, anything else is not.

Runs the real round-trip suite in a pytest subprocess with an
expected-failures file written by the test, against a seeded fault
(tests/faulty_backends.py) or the fault-free reference.
"""

from __future__ import annotations

import re

import pytest

from _suite_runner import run_suite

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
        "# with a step, the fault drops a state entry of every parameter that has state\n"
        "roundtrip | o.full and s.steps > 0 and \"stateful group\" in s.features"
        " | keys differ: missing | seeded fault | tests/faulty_backends.py\n",
        tmp_path,
    )
    assert code == 0, out[-4000:]
    assert re.search(r"\b1 passed\b", out), out[-2000:]
    counted = re.search(r"(\d+) example\(s\) failed as expected: .*xfails\.txt:2: roundtrip", out)
    assert counted and int(counted.group(1)) >= 1, out[-2000:]


def test_a_failure_without_the_entry_text_is_a_real_failure(tmp_path):
    code, out = run(
        "faulty_backends:DropsStateOnSet",
        "roundtrip | o.full and s.steps > 0 and \"stateful group\" in s.features | values differ"
        " | an unrelated known bug | n/a\n",
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
