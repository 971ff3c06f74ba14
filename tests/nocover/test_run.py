"""``osdconform run`` runs the suites from an installed package, not only from a clone.

Builds a wheel of this checkout (no network: no build isolation, no
dependencies), installs it into a folder of its own, and runs the suites from a
folder far from the clone, with that folder first on ``PYTHONPATH`` so the
installed copy is the one imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from helpers.suite_runner import ROOT, TESTS

pytestmark = pytest.mark.slow

#: What a wheel is built from (a copy, so the build leaves nothing in the checkout).
_SOURCES = ("pyproject.toml", "setup.py", "README.md", "osdconform", "suites")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> str:
    """A folder holding osdconform installed from a wheel of this checkout."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    for name in _SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(src)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = (work / "dist").glob("osdconform-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "osdconform/_suites/test_roundtrip.py" in names, names
    site = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return str(site)


def run_installed(site: str, cwd, *args: str) -> tuple[int, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([site, TESTS])  # not the clone
    proc = subprocess.run([sys.executable, "-m", "osdconform.cli._run", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_suites_come_from_the_installed_package(installed, tmp_path):
    code, out = run_installed(installed, tmp_path, "--where")
    assert code == 0, out
    assert out.strip() == os.path.join(installed, "osdconform", "_suites"), out


def test_run_passes_pytest_options_through(installed, tmp_path):
    code, out = run_installed(
        installed, tmp_path, "test_roundtrip.py::test_roundtrip[full]", "--",
        "--osd-world-sizes=1", "--hypothesis-profile=smoke",
    )
    assert code == 0, out[-4000:]
    assert "1 passed" in out and "site/osdconform/_suites/test_roundtrip.py ." in out, out[-4000:]
    assert "warning" not in out, out[-4000:]
    assert not os.path.exists(os.path.join(installed, "osdconform", "_suites", ".pytest_cache"))


def test_failure_writes_the_reproducer_where_the_user_is(installed, tmp_path):
    code, out = run_installed(
        installed, tmp_path, "test_roundtrip.py::test_roundtrip[full]", "--",
        "--osd-backend=helpers.faulty_backends:DropsStateOnSet", "--osd-world-sizes=1", "--hypothesis-profile=smoke",
        "--hypothesis-seed=0",  # smoke draws 5 random examples, which may all lack state
    )
    assert code == 1, out[-4000:]
    assert os.listdir(tmp_path / "osdconform-repro") == ["test_roundtrip__test_roundtrip_full.py"], out[-4000:]


def test_bad_selection_and_misplaced_options_are_one_line_errors(installed, tmp_path):
    code, out = run_installed(installed, tmp_path, "test_nope.py")
    assert code == 4 and "no suite 'test_nope.py'" in out and "test_roundtrip.py" in out, out
    code, out = run_installed(installed, tmp_path, "-k", "fsdp2")
    assert code == 2 and "pytest options go after --" in out, out
