"""Installing osdconform changes nothing for anyone else's tests.

pytest loads osdconform's entry point in every run of an environment where
it is installed.  In an unrelated project (its own rootdir, no conftest of
ours), a run that neither collects osdconform's suites nor passes an
``--osd-*`` option must behave exactly as with the plugin blocked
(``-p no:osdconform``): Hypothesis's own profiles, no torch import, the same
output.  The last case shows the probe can tell: given ``--osd-backend``, the
conformance plugin loads (our ``dev`` profile, torch imported).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

PROBE = '''
import sys
from hypothesis import given, settings, strategies as st

def test_environment():
    s = settings()
    print(f"PROBE profile={settings.get_current_profile_name()} max_examples={s.max_examples} "
          f"derandomize={s.derandomize} torch={'torch' in sys.modules}")

@given(st.integers())
def test_a_property(x):
    assert isinstance(x, int)
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-p no:cacheprovider'\n")
    (tmp_path / "test_unrelated.py").write_text(PROBE)
    return tmp_path


def _pytest(project, *args, ci: bool = False) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "GITHUB_ACTIONS", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", *args], cwd=project, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    probe = re.search(r"PROBE (.*)", proc.stdout)
    assert probe, proc.stdout
    return probe.group(1), proc.stdout


def _comparable(output: str) -> list[str]:
    """The output without what differs between any two runs (timings) or names the plugins loaded."""
    lines = [line for line in output.splitlines() if not line.startswith("plugins:")]
    return [re.sub(r" in [0-9.]+s", " in Ts", line) for line in lines]


def test_the_plugin_is_installed_here():
    from importlib.metadata import entry_points

    assert "osdconform.plugin" in {ep.value for ep in entry_points(group="pytest11")}


@pytest.mark.parametrize("ci", [False, True], ids=["local", "under-CI"])
def test_an_unrelated_project_runs_as_without_osdconform(project, ci):
    probe, output = _pytest(project, ci=ci)
    blocked_probe, blocked_output = _pytest(project, "-p", "no:osdconform", ci=ci)
    assert probe == blocked_probe
    assert "torch=False" in probe
    if not ci:
        assert probe.startswith("profile=default max_examples=100 ")
    assert _comparable(output) == _comparable(blocked_output)
    assert "osdconform" not in "\n".join(_comparable(output))


def test_an_osd_option_turns_the_plugin_on(project):
    probe, output = _pytest(project, "--osd-backend=reference")
    assert probe.startswith("profile=dev max_examples=10 ") and probe.endswith("torch=True")
    assert "osdconform: backend reference" in output
