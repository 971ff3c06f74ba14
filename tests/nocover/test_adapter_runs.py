"""Adapters built from the public kit, run against real suites (nested pytest sessions; a subprocess
where the adapter is a user's module found on PYTHONPATH).

* A storage backend that writes on rank 0 only, after a sleep, and reads on
  every rank, given through a factory spec with an argument: it passes the
  storage round trip at world size 2 because the suite puts a barrier between
  the save and the load (without it the other ranks find no file).
* README's adapter examples (the code blocks marked ``<!-- adapter-example: FILE -->``),
  written into a temporary folder as the modules they say they are, pass the
  round trip at world sizes 1 and 2; the storage one also the error suite.
  So an adapter copied from the README works as written.
* A training framework through the `Framework` hooks (its own wrapping and
  loop) passes round trip and resume; the same framework with a fault only
  its own loop has (no optimizer step after a resume) fails resume, so the
  suite really trains through the adapter's ``train``.
"""

from __future__ import annotations

import os
import re

import pytest

from helpers.suite_runner import ROOT, run_suite

pytestmark = pytest.mark.slow

MARKER = re.compile(r"<!-- adapter-example: (\w+\.py) -->\n```python\n(.*?)```", re.S)


def readme_examples() -> dict[str, str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return dict(MARKER.findall(f.read()))


def _passed(out: str) -> int:
    found = re.search(r"(\d+) passed", out)
    return int(found.group(1)) if found else 0


def test_rank0_writer_with_factory_arguments_passes_the_storage_roundtrip_at_world_2():
    code, out = run_suite(
        "--osd-backend=helpers.kit_backends:rank0_saver(delay=0.5)", "--osd-world-sizes=2",
        "--hypothesis-profile=smoke", "-p", "no:xdist", "-k", "storage",
    )
    assert code == 0 and _passed(out) == 1, out[-4000:]  # storage+async_save: unsupported (skipped)
    assert "failed" not in out, out[-4000:]


def test_readme_examples_are_found():
    assert set(readme_examples()) == {"osd_adapter.py", "osd_checkpointer.py"}


@pytest.mark.parametrize(
    "module, attr, targets, passed",
    [
        ("osd_adapter", "StateDictAdapter", ("test_roundtrip.py",), 1),
        ("osd_checkpointer", "Rank0Checkpointer", ("test_roundtrip.py", "test_errors.py"), 2),
    ],
)
def test_readme_adapter_passes_the_suites(tmp_path, monkeypatch, module, attr, targets, passed):
    for name, code in readme_examples().items():
        (tmp_path / name).write_text(code)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    code, out = run_suite(
        f"--osd-backend={module}:{attr}", "--osd-world-sizes=1,2", "--hypothesis-profile=smoke",
        "-p", "no:xdist", target=targets,
        in_process=False,  # the README's modules are imported from this test's own folder, as a user's are
    )
    assert code == 0 and _passed(out) == passed, out[-4000:]
    assert "failed" not in out and "xfail" not in out, out[-4000:]


def test_a_framework_with_its_own_wrapping_and_loop_passes():
    code, out = run_suite(
        "--osd-backend=helpers.kit_backends:OwnLoop", "--osd-world-sizes=1,2", "--hypothesis-profile=smoke",
        "-p", "no:xdist", "-k", "full and not flatten and not cpu_offload and not broadcast",
        target=("test_roundtrip.py", "test_resume.py"),
    )
    assert code == 0 and _passed(out) == 2, out[-4000:]
    assert "failed" not in out and "xfail" not in out, out[-4000:]


def test_a_fault_in_the_frameworks_own_loop_fails_resume():
    code, out = run_suite(
        # The ci profile: derandomized, so it surely draws a checkpoint after some steps
        # (a resume from step 0 is the full run, which the fault does not touch).
        "--osd-backend=helpers.kit_backends:OwnLoopForgetsAfterResume", "--osd-world-sizes=1,2",
        "--hypothesis-profile=ci", "-p", "no:xdist", "-k", "full and not flatten and not cpu_offload",
        target="test_resume.py",
    )
    assert code == 1 and "1 failed" in out, out[-4000:]
    assert "resume (" in out, out[-4000:]
