"""Time to a ready world, and to the end of a short main job, by how ranks start.

    python bench/bench_startup.py [--worlds 1,2,3,4] [--repeats 3] [--main-job]

Both start methods of ``osdconform/harness/_start.py`` side by side, in one run:

* ``spawn``: every rank a fresh interpreter that imports torch itself (what
  osdconform did before the fork server);
* ``forkserver``: every rank a fork of one server per driver that imported
  torch and the rank code once (the default now).

What is timed
-------------
*ready*: ``World(W, start_method=m)`` from the call to the moment every rank
has joined its gloo process group (``World`` returns only then), then one
task on every rank (its answer checked, so a world that only looked ready
fails the run).  Each start method first starts and closes one throw-away
world of 1, so the fork server's own start (a fresh interpreter importing
`_start.PRELOAD`, reported apart as *server start*) is not in the ready times;
``spawn`` gets the same warm-up so the page cache is equally warm.  Worlds of
each size are started `--repeats` times, alternating the methods, and the
median is reported.

*main job* (``--main-job``): the README's main job, ``pytest suites -n auto``
with the ``dev`` profile and a fixed ``--hypothesis-seed``, once with each
``OSDCONFORM_START_METHOD``, as wall time of the whole command (its exit code
is checked): the start-up share a user waits on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

METHODS = ("spawn", "forkserver")


def _ready_seconds(size: int, method: str) -> float:
    from helpers import rank_tasks as rt
    from osdconform.harness import World

    start = time.perf_counter()
    world = World(size, start_method=method)
    try:
        seconds = time.perf_counter() - start
        assert world.run(rt.echo, (size,)) == [size] * size
    finally:
        world.close()
    return seconds


def _main_job(method: str) -> float:
    env = dict(os.environ, OSDCONFORM_START_METHOD=method)
    cmd = [sys.executable, "-m", "pytest", "suites", "-n", "auto", "-q", "-p", "no:cacheprovider",
           "--hypothesis-seed=0", "--osd-progress=off"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"main job with {method} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", default="1,2,3,4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--main-job", action="store_true", help="also time `pytest suites -n auto` both ways")
    args = parser.parse_args()
    sizes = [int(w) for w in args.worlds.split(",")]

    import torch

    print(f"$ python bench/bench_startup.py {' '.join(sys.argv[1:])}")
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores")
    start = time.perf_counter()
    _ready_seconds(1, "forkserver")
    print(f"server start (fork server's interpreter and preload, plus a world of 1): "
          f"{time.perf_counter() - start:.2f} s")
    _ready_seconds(1, "spawn")

    times: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.repeats):
        for size in sizes:
            for method in METHODS:
                times.setdefault((size, method), []).append(_ready_seconds(size, method))

    print("\n| world | spawn: ready (s) | forkserver: ready (s) | spawn / forkserver |")
    print("|---|---|---|---|")
    for size in sizes:
        s, f = (statistics.median(times[size, m]) for m in METHODS)
        print(f"| {size} | {s:.3f} | {f:.3f} | {s / f:.1f}x |")

    if args.main_job:
        print("\n| main job `pytest suites -n auto` (dev, seed 0) | wall (s) |")
        print("|---|---|")
        for method in METHODS:
            print(f"| {method} | {_main_job(method):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
