"""Round trips per second under four harnesses, side by side, in one run.

    python bench/bench_roundtrip.py [--worlds 1,2,4] [--examples N] [--backend reference]

What is measured
----------------
For each world size W there is ONE fixed scenario (`_common.scenario_for`): an
MLP 5 -> 3 -> 2 with biases, Adam with one param group at torch's defaults,
plan ``fsdp2`` (``fully_shard`` on the root; also at W=1), one training step,
seed 0; backend ``reference`` (``--backend``), full OSD (``StateOptions()``).
An *example* is one call of ``osdconform.properties.roundtrip(ctx, scenario,
backend, options)`` on every rank of a gloo process group of W CPU ranks: it
builds the workload, trains, gets the OSD, builds fresh objects, sets, gets
again, gathers both live states with the reference and compares.  Every
harness runs exactly that function with exactly those arguments, and every
harness checks the value it returns (the same summary dict), so a harness that
silently skipped work would fail, not look fast.

The four harnesses:

* (h) osdconform's harness: ``WorldPool().run(W, properties.roundtrip,
  scenario, backend, options)`` once per example from this process.  The world
  is spawned first (``pool.world(W)``, reported as *start*), then one untimed
  warm-up example, then the timed examples.  Includes everything the harness
  does per example: pickling the task (once for all ranks), the pipe round
  trip, phase bookkeeping in shared memory, the driver's wait loop.
* (floor) no harness: W ranks spawned by this script (``multiprocessing``
  ``spawn``, gloo over a ``TCPStore``, ``torch.set_num_threads(1)`` as
  osdconform's ranks do); each rank calls the same ``properties.roundtrip``
  in a plain ``for`` loop with a stand-in ctx (rank, world_size, device,
  ``tmpdir=None``, no-op ``phase``/``set_phase``), timed on the ranks from a
  barrier before the loop to a barrier after it.  This is the cost of the
  work itself: no dispatch at all.
* (b) ``MultiProcContinuousTest`` (torch.testing._internal.common_distributed):
  ranks spawned once per test class, test methods dispatched to them through
  ``multiprocessing`` queues.  The class has N generated test methods, each
  running the same roundtrip with the same stand-in ctx (backend_str ``gloo``,
  device_type ``cpu``, the same ``set_num_threads(1)``).  It runs under
  ``unittest`` in a subprocess; a first test that only runs a barrier pays for
  the lazy process start (reported as *start*), a second runs one untimed
  warm-up example, and the timed window runs from the start of the first
  example test to the end of the last, as seen by the dispatching process.
* (c) ``MultiProcessTestCase`` from the same module: every test spawns its own
  world in ``setUp`` (``self._spawn_processes()``), joins a gloo group through
  a ``FileStore`` and runs the same roundtrip once.  Each example pays a spawn,
  which is the point, so only a few examples are run and the rate is
  normalised per example.

Why the comparison is fair: the per-example work is one and the same function
call with the same picklable arguments on the same number of ranks, the ranks
use the same thread setting, the same gloo backend and the same CPU device;
the worlds are warm (a warm-up example for h, floor and b) except in (c),
whose whole point is that it is not.  What differs is only what each harness
does around the call.

Note what the floor does *not* pay: its ranks run examples back to back
without meeting anyone between them, so a rank that finishes an example early
starts the next one at once.  A harness that dispatches examples one by one
(h, b) puts the ranks in lockstep per example (all ranks finish, the driver
collects, the driver sends the next), so it pays for the slowest rank of every
example and for waking every process once per example.  On a loaded machine
with no more cores than ranks, that is a large part of the measured "dispatch
overhead" at world sizes > 1.

h and floor are measured in interleaved blocks (h, floor, floor, h: "ABBA")
with both worlds alive but idle while the other runs, so that drift in the
machine's background load affects both alike; (b) and (c) run afterwards (in
one block each) with the other worlds closed, so they see a different slice of
the background load.  Each harness's start (ranks spawned, process group up)
and warm-up example are reported apart from its rate, and also folded in as
"examples/s incl. start + warm-up".  (osdconform's ranks import osdconform
lazily, on the first task, so for (h) that import lands in the warm-up, while
the floor's ranks import it while starting: compare start + warm-up, not start
alone.)

Every rank process is cleaned up on any exit path: the pool and the floor
world are context managers, their ranks die with this process
(``PR_SET_PDEATHSIG``), (b)/(c) run in their own process group, which is
killed afterwards, and the script checks that it has no children left.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if REPO not in sys.path:
    sys.path.insert(1, REPO)

import _common  # noqa: E402
from _report import Measurement, summary_report, world_report  # noqa: E402

#: Defaults chosen so that the whole default run stays around 3-4 minutes on 2 cores.
DEFAULT_N = {1: 200, 2: 200}  # h and floor; other sizes: DEFAULT_N_LARGE
DEFAULT_N_LARGE = 60
DEFAULT_N_B = {1: 50, 2: 50}
DEFAULT_N_B_LARGE = 20
DEFAULT_N_C = {1: 5, 2: 5}
DEFAULT_N_C_LARGE = 3


# -- (h) and (floor) -------------------------------------------------------------------


def measure_h_and_floor(world, scenario, backend, options, n):
    from osdconform import properties
    from osdconform.harness import WorldPool

    expected = _common.expected_summary(scenario)
    h = Measurement("h")
    fl = Measurement("floor")
    with WorldPool() as pool:
        t0 = time.perf_counter()
        pool.world(world)
        h.start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        values = pool.run(world, properties.roundtrip, scenario, backend, options)
        h.warmup_s = time.perf_counter() - t0
        if values != [expected] * world:
            raise RuntimeError(f"harness warm-up returned {values}, expected {expected} per rank")

        def h_block(k):
            run = pool.run
            fn = properties.roundtrip
            last = None
            t0 = time.perf_counter()
            for _ in range(k):
                last = run(world, fn, scenario, backend, options)
            dt = time.perf_counter() - t0
            if last != [expected] * world:
                raise RuntimeError(f"harness returned {last}, expected {expected} per rank")
            h.blocks.append((k, dt))

        with _common.FloorWorld(world, scenario, backend, options) as floor:
            fl.start_s = floor.spawn_s
            fl.warmup_s = floor.run_block(1)

            def floor_block(k):
                fl.blocks.append((k, floor.run_block(k)))

            a = n // 2
            b = n - a
            # ABBA: h, floor, floor, h
            h_block(a)
            floor_block(a)
            floor_block(b)
            h_block(b)
    for m in (h, fl):
        m.examples = sum(k for k, _ in m.blocks)
        m.seconds = sum(s for _, s in m.blocks)
    return h, fl


# -- (b) and (c): torch's harnesses, in a subprocess -----------------------------------


def run_torch_harness(kind, world, n, plan, backend, form, timeout):
    """Run `_torch_cases.py` for `kind` in its own process group; return its JSON."""
    with tempfile.TemporaryDirectory(prefix="osdbench-") as tmp:
        out_path = os.path.join(tmp, "result.json")
        log_path = os.path.join(tmp, "log.txt")
        env = dict(
            os.environ,
            OSDBENCH_KIND=kind,
            OSDBENCH_WORLD=str(world),
            OSDBENCH_N=str(n),
            OSDBENCH_PLAN=plan,
            OSDBENCH_BACKEND=backend,
            OSDBENCH_FORM=form,
            OSDBENCH_OUT=out_path,
            OSDBENCH_PARENT_PID=str(os.getpid()),
            # torch's harnesses leave rendezvous files in the temp dir when they are
            # killed; keep them in this run's directory, which is removed below.
            TMPDIR=tmp,
            PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p),
        )
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "_torch_cases.py")],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we can kill all of it
            )
            try:
                rc = proc.wait(timeout=timeout)
            except BaseException:  # timeout, Ctrl-C, SIGTERM: kill the whole group now
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
                raise
            finally:
                leftovers = _kill_group(proc.pid)
        if leftovers:
            print(f"warning: ({kind}) left processes behind in its group; killed them: {leftovers}",
                  file=sys.stderr)
        result = None
        if os.path.exists(out_path):
            with open(out_path) as f:
                result = json.load(f)
        if rc != 0 or result is None or result["problems"]:
            with open(log_path, errors="replace") as f:
                tail = f.read()[-6000:]
            problems = result["problems"] if result else "no result file"
            raise RuntimeError(f"({kind}) world {world}: exit code {rc}; problems: {problems}\n{tail}")
        return result


def _kill_group(pgid: int) -> list[str]:
    """SIGKILL whatever is left in process group `pgid` (which this script created).

    Waits up to a second for the group to empty by itself first: the runner's
    multiprocessing resource tracker exits shortly after the runner.  Returns
    the command lines of what had to be killed, except that tracker.
    """
    deadline = time.monotonic() + 1.0
    members = _common.group_members(pgid)
    while members and time.monotonic() < deadline:
        time.sleep(0.05)
        members = _common.group_members(pgid)
    if not members:
        return []
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return [cmd for _, cmd in members if "resource_tracker" not in cmd]


def _torch_examples(label, kind, world, n, plan, backend, form, timeout):
    """Run torch harness `kind` and return (its per-test times, the timed example names)."""
    t = run_torch_harness(kind, world, n, plan, backend, form, timeout=timeout)["tests"]
    timed = sorted(k for k in t if k.startswith("test_c_example_"))
    if len(timed) != n:
        raise RuntimeError(f"({label}) ran {len(timed)} example tests, expected {n}")
    return t, timed


def measure_b(world, n, plan, backend, form):
    t, timed = _torch_examples("b", "continuous", world, n, plan, backend, form, 600 + 20 * n)
    m = Measurement("b", examples=n)
    m.start_s = t["test_a_start"]["stop"] - t["test_a_start"]["start"]
    m.warmup_s = t["test_b_warmup"]["stop"] - t["test_b_warmup"]["start"]
    m.seconds = t[timed[-1]]["stop"] - t[timed[0]]["start"]
    m.blocks = [(n, m.seconds)]
    return m


def measure_c(world, n, plan, backend, form):
    t, timed = _torch_examples("c", "spawn", world, n, plan, backend, form, 300 + 120 * n)
    m = Measurement("c", examples=n)
    m.seconds = t[timed[-1]]["stop"] - t[timed[0]]["start"]
    m.blocks = [(1, t[k]["stop"] - t[k]["start"]) for k in timed]
    m.note = "spawn + process group in every example"
    return m


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worlds", default="1,2,4", help="world sizes, comma-separated (default 1,2,4)")
    p.add_argument("--examples", type=int, default=None,
                   help="timed examples for (h) and (floor) at every world size "
                        f"(default {DEFAULT_N[1]} at worlds 1-2, {DEFAULT_N_LARGE} above)")
    p.add_argument("--examples-b", type=int, default=None,
                   help=f"timed examples for (b) (default {DEFAULT_N_B[1]} at worlds 1-2, {DEFAULT_N_B_LARGE} above)")
    p.add_argument("--examples-c", type=int, default=None,
                   help=f"examples for (c) (default {DEFAULT_N_C[1]} at worlds 1-2, {DEFAULT_N_C_LARGE} above)")
    p.add_argument("--backend", default="reference", help="backend spec (default reference; or torch-dsd)")
    p.add_argument("--plan", default="fsdp2", choices=("fsdp2", "none", "ddp"),
                   help="plan of the scenario at every world size (default fsdp2)")
    p.add_argument("--form", default="full", choices=("full", "sharded"), help="OSD form (default full)")
    p.add_argument("--harnesses", default="h,floor,b,c",
                   help="which harnesses to run (h and floor always run together); default all")
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    worlds = [int(w) for w in args.worlds.split(",") if w.strip()]
    chosen = {h.strip() for h in args.harnesses.split(",")}
    if chosen & {"h", "floor"}:
        chosen |= {"h", "floor"}

    # Turn SIGTERM into an exception so that every `finally` (and context manager) runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import torch

    from osdconform.backends import resolve_backend

    resolve_backend(args.backend)  # fail early on a bad spec
    options = _common.options_for(args.form)

    cmd = shlex.join([os.path.basename(sys.executable)] + sys.argv)
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print("## osdconform round-trip benchmark\n")
    print(f"- command: `{cmd}` (cwd {os.getcwd()})")
    print(f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print(f"- cores: {cores} (usable by this process: {usable})")
    print(f"- backend {args.backend!r}, OSD form {args.form} ({options}), plan {args.plan!r}")
    print(f"- load average at start: {_loadavg()}")
    print(flush=True)

    t_start = time.perf_counter()
    results: dict[int, dict[str, Measurement]] = {}
    report = {"command": cmd, "torch": torch.__version__, "cores": cores, "worlds": {}}
    for world in worlds:
        n = args.examples or DEFAULT_N.get(world, DEFAULT_N_LARGE)
        nb = args.examples_b or DEFAULT_N_B.get(world, DEFAULT_N_B_LARGE)
        nc = args.examples_c or DEFAULT_N_C.get(world, DEFAULT_N_C_LARGE)
        scenario = _common.scenario_for(world, args.plan)
        ms: dict[str, Measurement] = {}
        t_world = time.perf_counter()
        if "h" in chosen:
            ms["h"], ms["floor"] = measure_h_and_floor(world, scenario, args.backend, options, n)
        if "b" in chosen:
            ms["b"] = measure_b(world, nb, args.plan, args.backend, args.form)
        if "c" in chosen:
            ms["c"] = measure_c(world, nc, args.plan, args.backend, args.form)
        results[world] = ms
        print(world_report(world, scenario, ms))
        print(f"(world {world}: {time.perf_counter() - t_world:.1f} s wall, "
              f"load average now {_loadavg()})\n", flush=True)
        report["worlds"][world] = {k: {**asdict(m), "rate": m.rate} for k, m in ms.items()}

    print(summary_report(results))
    wall = time.perf_counter() - t_start
    left = _common.child_pids()
    print(f"- total wall time of the measurements: {wall:.1f} s")
    print(f"- load average at end: {_loadavg()}")
    print(f"- child processes left behind: {left if left else 'none'}")
    if args.json:
        report["wall_s"] = wall
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
