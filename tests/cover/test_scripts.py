"""`helpers.scripts.run_script` runs a script as ``python script.py`` would.

The shipped reproducers' verdicts (exit 1 while the bug exists) come through it,
so what a script sees and how its exit is reported must be a fresh
interpreter's: ``__main__``, ``sys.argv``, ``sys.path[0]``, the environment and
working directory given, no module of osdconform or pytest already imported,
and the exit code as ``subprocess`` reports it (negative for a signal); a
script that outlives its timeout goes down with whatever it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time

import pytest

from helpers.scripts import run_script, runpytest_subprocess


def script(tmp_path, body: str, name: str = "probe.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_a_script_runs_as_main_with_its_own_argv_path_env_and_cwd(tmp_path):
    (tmp_path / "sibling.py").write_text("VALUE = 7\n")
    probe = script(tmp_path, """
        import json, os, sys
        import sibling
        print(json.dumps({
            "name": __name__, "argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(),
            "env": os.environ.get("PROBE_VALUE"), "sibling": sibling.VALUE,
            "loaded": sorted(m for m in ("osdconform", "pytest", "hypothesis", "helpers") if m in sys.modules),
            "torch": "torch" in sys.modules,
        }))
    """)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        proc = run_script(probe, env={**os.environ, "PROBE_VALUE": "x"})
    finally:
        os.chdir(cwd)
    assert proc.returncode == 0, proc.stdout
    seen = json.loads(proc.stdout)
    assert seen == {
        "name": "__main__", "argv": [str(probe)], "path0": str(tmp_path), "cwd": str(tmp_path),
        "env": "x", "sibling": 7, "loaded": [], "torch": True,
    }


@pytest.mark.parametrize(
    "body, code, shown",
    [
        ("import sys; print('out'); print('err', file=sys.stderr); sys.exit(1)", 1, "out\nerr\n"),
        ("import sys; sys.exit(None)", 0, ""),
        ("import sys; sys.exit('a message')", 1, "a message"),
        ("raise ValueError('boom')", 1, "ValueError: boom"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGABRT)", -6, ""),
    ],
)
def test_the_exit_is_reported_as_subprocess_reports_it(tmp_path, body, code, shown):
    proc = run_script(script(tmp_path, body))
    assert proc.returncode == code, proc.stdout
    assert shown in proc.stdout


def test_atexit_handlers_and_non_daemon_threads_finish_before_the_exit(tmp_path):
    proc = run_script(script(tmp_path, """
        import atexit, threading, time
        atexit.register(lambda: print("atexit ran"))
        threading.Thread(target=lambda: (time.sleep(0.2), print("thread finished"))).start()
    """))
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["thread finished", "atexit ran"]


def test_a_script_past_its_timeout_is_killed_with_what_it_started(tmp_path):
    pids = tmp_path / "pids"
    hung = script(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(str(child.pid))
        time.sleep(60)
    """)
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_script(hung, timeout=3)
    assert time.monotonic() - start < 30
    child = int(pids.read_text())
    for _ in range(50):
        if not os.path.exists(f"/proc/{child}") or " Z " in open(f"/proc/{child}/stat").read():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the script's own child {child} outlived the timeout")
    # The server is still there for the next script.
    assert run_script(script(tmp_path, "print('next')", "next.py")).stdout == "next\n"


def test_the_server_is_separate_from_this_process(tmp_path):
    proc = run_script(script(tmp_path, "import os; print(os.getppid())"))
    assert int(proc.stdout) not in (os.getpid(), 0)


def test_a_forked_pytest_run_is_pytesters_run(pytester):
    """The same exit, summary and ``sys.path`` as ``pytester.runpytest_subprocess``."""
    pytester.makepyfile(test_probe="""
        import sys

        def test_path():
            print("PATH", sys.path[:2], sys.argv[0].endswith("__main__.py"))

        def test_fails():
            assert 1 == 2
    """)
    ours = runpytest_subprocess(pytester, "-p", "no:cacheprovider", "-s", "-p", "no:randomly")
    theirs = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "-p", "no:randomly")
    assert ours.ret == theirs.ret == pytest.ExitCode.TESTS_FAILED
    assert ours.parseoutcomes() == theirs.parseoutcomes() == {"passed": 1, "failed": 1}
    path = [line for line in ours.outlines if "PATH" in line]
    assert path and path == [line for line in theirs.outlines if "PATH" in line]
    assert "True" in path[0]


def test_a_script_that_cannot_start_fails_and_the_server_goes_on(tmp_path):
    """A child that fails before its script runs (here: no such working directory) leaves
    with 1 and does not go on as a second server reading the requests."""
    from helpers import scripts

    probe = script(tmp_path, "print('ran')")
    returncode, out, _ = scripts._run(str(probe), module=False, cwd=tmp_path / "missing", timeout=30, split=False)
    assert returncode == 1 and "ran" not in out
    for _ in range(3):
        assert run_script(probe).stdout == "ran\n"
