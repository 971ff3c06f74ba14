"""Cost-growth curves of osdconform, in one run: how its cost grows with world
size, model size and parameter count, and how its reference oracle compares
with torch's own state-dict APIs on a large optimizer state dict.

Why: bench_roundtrip.py measures one tiny scenario; this one asks where the
cost goes as things get big, so that a slow or memory-hungry step shows up as
a curve that bends, not as a suite that "feels slow".  Four measurements:

1. **rate**: examples/s of the round-trip property (``properties.roundtrip``,
   backend ``reference``, full OSD) through osdconform's warm ``WorldPool``,
   for each world size and plan, on bench_roundtrip's scenario (MLP 5->3->2,
   Adam, 1 step).  One untimed warm-up example, then examples until
   ``--seconds`` have passed; every returned summary is checked.
2. **size**: time and peak memory of one round trip against the parameter
   count of an MLP of 4 square layers (``dims=(w,)*5``, biases), from ~1e3 to
   ~1e7 parameters, 8 FQNs throughout.
3. **fqns**: the same against the number of FQNs (10 -> 10,000): an MLP of
   4-wide layers (``dims=(4,)*(n/2+1)``), about 10 parameters per FQN, so the
   per-entry costs show; beside it, flatten / unflatten of that OSD,
   reference against torch.
4. **vs torch**: on one workload (FSDP2, Adam, 1 step, world 2 by default),
   the reference's ``full_osd`` / ``load_osd`` / ``flatten`` / ``unflatten``
   against torch's ``get_optimizer_state_dict`` / ``set_optimizer_state_dict``
   (``full_state_dict=True``), the ``flatten_optimizer_state_dict`` option,
   ``_flatten_optim_state_dict`` and ``_unflatten_optim_state_dict``, in
   ABBA order, with the ratio reference / torch side by side.

Points 2-4 each run in a fresh world (a fork of the fork server, ~0.05 s),
first warmed up with the tiny scenario, so that one point's memory cannot hide
in the next one's.  Times are the slowest rank's, median over repeats; peak
memory is per rank, measured inside the rank (see ``_growth_tasks``: the
resident high-water mark reset before the operation, minus the resident size
before it), max over ranks and repeats.  The tables and plots are written by
``_growth_report``; matplotlib is optional (tables only without it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Before the first world: the fork server (and so every rank) inherits this
# sys.path, and the ranks import `_growth_tasks` by name.
sys.path.insert(0, HERE)
if REPO not in sys.path:
    sys.path.insert(1, REPO)

import _common  # noqa: E402
import _growth_report  # noqa: E402
import _growth_tasks  # noqa: E402

DEFAULT_SIZES = "1e3,3e3,1e4,3e4,1e5,3e5,1e6,3e6,1e7"
DEFAULT_FQNS = "10,30,100,300,1000,3000,10000"
#: Above this FQN count the reference's unflatten is not run.  It was quadratic
#: (2,000 FQNs took ~6 s) until `_longest_prefix` looked prefixes up in a set;
#: now it is linear and runs at every default point.
DEFAULT_UNFLATTEN_MAX = 10000
BACKEND = "reference"
#: Imported by the fork server besides osdconform's own preload (which has torch._dynamo,
#: what a first FSDP2 step imports): this benchmark's rank tasks, which every fresh
#: world would otherwise import again.  None of it starts a thread.
EXTRA_PRELOAD = ["osdconform.backends.reference", "osdconform.scenario", "_growth_tasks"]


def adam_scenario(model, world: int, plan: str):
    """`model` trained 1 step with Adam (one group, torch's defaults) under `plan` at `world`."""
    from osdconform.scenario import GroupSpec, OptimizerSpec, PlanSpec, Scenario

    optimizer = OptimizerSpec("adam", (GroupSpec(params=model.param_fqns()),))
    return Scenario(seed=0, world_size=world, model=model, optimizers=(optimizer,), plan=PlanSpec(plan), steps=1)


def size_model(params: float):
    """An MLP of 4 square layers with biases and about `params` parameters (width even)."""
    from osdconform.scenario import MLPSpec

    w = max(2, 2 * round(math.sqrt(params / 4) / 2))
    return MLPSpec(dims=(w,) * 5, bias=(True,) * 4)


def fqn_model(fqns: int):
    """An MLP of 4-wide layers with biases: `fqns` FQNs (rounded up to even), ~10 parameters each."""
    from osdconform.scenario import MLPSpec

    layers = max(1, -(-fqns // 2))
    return MLPSpec(dims=(4,) * (layers + 1), bias=(True,) * layers)


def n_params(model) -> int:
    return sum(math.prod(s) for s in model.param_shapes().values())


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if xs else float("nan")


def _max_or_none(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def start_fork_server() -> None:
    """Start this process's fork server now, with `EXTRA_PRELOAD` on top of osdconform's list.

    osdconform forks every rank from the process's fork server and uses one
    that is already running as it is (`osdconform.harness._start`), so the
    fresh world of each curve point starts with those imports done.
    """
    import multiprocessing as mp
    from multiprocessing import forkserver

    from osdconform.harness import _start

    if _start.start_method() != "forkserver":
        return
    mp.get_context("forkserver").set_forkserver_preload(list(_start.PRELOAD) + EXTRA_PRELOAD)
    forkserver.ensure_running()


def leftover_processes() -> list[int]:
    """Children of this process other than the fork server, and any child of the fork server (ranks)."""
    left = []
    for pid in _common.child_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                server = b"multiprocessing.forkserver" in f.read()
        except OSError:
            continue
        left += _common.child_pids(pid) if server else [pid]
    return left


# -- 1. examples/s per world size and plan ------------------------------------------------


def measure_rates(worlds, plans, seconds: float) -> list[dict]:
    from osdconform import properties
    from osdconform.backends import StateOptions
    from osdconform.harness import WorldPool

    rows = []
    options = StateOptions()
    with WorldPool(timeout=300) as pool:
        for world in worlds:
            t0 = time.perf_counter()
            pool.world(world)
            start_s = time.perf_counter() - t0
            for plan in plans:
                scenario = _common.scenario_for(world, plan)
                expected = [_common.expected_summary(scenario)] * world
                run = pool.run
                values = run(world, properties.roundtrip, scenario, BACKEND, options)  # warm-up
                if values != expected:
                    raise RuntimeError(f"world {world} plan {plan}: warm-up returned {values}, expected {expected}")
                n, t0 = 0, time.perf_counter()
                while True:
                    values = run(world, properties.roundtrip, scenario, BACKEND, options)
                    n += 1
                    if values != expected:
                        raise RuntimeError(f"world {world} plan {plan}: returned {values}, expected {expected}")
                    elapsed = time.perf_counter() - t0
                    if elapsed >= seconds and n >= 3:
                        break
                rows.append({"world": world, "plan": plan, "examples": n, "seconds": elapsed,
                             "rate": n / elapsed, "world_start_s": start_s})
                print(f"  rate: world {world} plan {plan:6s} {n / elapsed:7.1f} examples/s ({n} in {elapsed:.2f} s)",
                      flush=True)
    return rows


# -- 2, 3. one round trip against model size and FQN count -------------------------------


def _fresh_world_run(world: int, fn, *args, plan: str = "fsdp2"):
    """Run `fn` in a fresh world of `world`, after one warm-up round trip of the tiny scenario."""
    from osdconform.backends import StateOptions
    from osdconform.harness import WorldPool

    with WorldPool(timeout=900) as pool:
        pool.run(world, _growth_tasks.roundtrip_point, _common.scenario_for(world, plan), BACKEND, StateOptions(), 1, 0.0)
        return pool.run(world, fn, *args)


def measure_curve(kind: str, points, world: int, plan: str, repeats: int, budget_s: float) -> list[dict]:
    from osdconform.backends import StateOptions

    rows = []
    for x in points:
        model = size_model(x) if kind == "size" else fqn_model(int(x))
        scenario = adam_scenario(model, world, plan)
        t0 = time.perf_counter()
        per_rank = _fresh_world_run(world, _growth_tasks.roundtrip_point, scenario, BACKEND, StateOptions(),
                                    repeats, budget_s, plan=plan)
        wall = time.perf_counter() - t0
        runs = len(per_rank[0]["times"])
        times = [max(r["times"][i] for r in per_rank) for i in range(runs)]
        row = {
            "params": n_params(model), "fqns": len(model.param_fqns()), "dims": model.dims[:2],
            "layers": len(model.dims) - 1, "world": world, "plan": plan, "runs": runs,
            "time_s": _median(times), "times": times,
            "peak_mib": _max_or_none(p for r in per_rank for p in r["peaks"]),
            "rss_before_mib": _max_or_none(r["rss_mib"] for r in per_rank), "wall_s": wall,
        }
        rows.append(row)
        print(f"  {kind}: {row['params']:>10,} params {row['fqns']:>6} FQNs  {row['time_s']:8.3f} s  "
              f"peak +{row['peak_mib'] or 0:7.1f} MiB  ({runs} runs, {wall:.1f} s wall)", flush=True)
    return rows


def measure_flatten(points, unflatten_max: int) -> list[dict]:
    rows = []
    for x in points:
        model = fqn_model(int(x))
        scenario = adam_scenario(model, 1, "none")
        r = _fresh_world_run(1, _growth_tasks.flatten_point, scenario, len(model.param_fqns()) <= unflatten_max,
                             plan="none")[0]
        rows.append({"fqns": len(model.param_fqns()), **r})
        ref_u = r["unflatten"].get("reference")
        print(f"  flatten: {len(model.param_fqns()):>6} FQNs {r['flat_keys']:>7} keys  flatten ref "
              f"{r['flatten']['reference'] * 1e3:.2f} ms torch {r['flatten']['torch'] * 1e3:.2f} ms; unflatten ref "
              f"{'-' if ref_u is None else f'{ref_u * 1e3:.1f} ms'} torch {r['unflatten']['torch'] * 1e3:.2f} ms",
              flush=True)
    return rows


# -- 4. the reference against torch ------------------------------------------------------


def measure_compare(cases, world: int, plan: str, repeats: int) -> list[dict]:
    rows = []
    for label, model, reps in cases:
        scenario = adam_scenario(model, world, plan)
        t0 = time.perf_counter()
        per_rank = _fresh_world_run(world, _growth_tasks.compare_point, scenario, reps or repeats, plan=plan)
        wall = time.perf_counter() - t0
        first = per_rank[0]
        ops = {}
        for op in first["ops"]:
            ops[op] = {}
            for side in first["ops"][op]:
                k = len(first["ops"][op][side]["times"])
                times = [max(r["ops"][op][side]["times"][i] for r in per_rank) for i in range(k)]
                ops[op][side] = {
                    "time_s": _median(times), "times": times,
                    "peak_mib": _max_or_none(p for r in per_rank for p in r["ops"][op][side]["peaks"]),
                }
        row = {"label": label, "params": n_params(model), "fqns": len(model.param_fqns()), "world": world,
               "plan": plan, "osd_mib": first["osd_mib"],
               "largest_tensor_mib": first["largest_tensor_mib"], "flat_keys": first["flat_keys"],
               "same_osd": all(r["same_osd"] for r in per_rank), "difference": first["difference"],
               "ops": ops, "wall_s": wall}
        rows.append(row)
        print(f"  vs torch: {label} ({row['osd_mib']:.1f} MiB of state, same OSD: {row['same_osd']}, "
              f"{wall:.1f} s wall)", flush=True)
        for op, sides in ops.items():
            r, t = sides["reference"], sides["torch"]
            print(f"    {op:20s} reference {r['time_s'] * 1e3:9.2f} ms  torch {t['time_s'] * 1e3:9.2f} ms  "
                  f"ratio {r['time_s'] / t['time_s']:6.2f}", flush=True)
    return rows


# -- the run -----------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worlds", default="1,2,3,4", help="world sizes of the rate table (default 1,2,3,4)")
    p.add_argument("--plans", default="none,ddp,fsdp2", help="plans of the rate table (default none,ddp,fsdp2)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per rate cell (default 2)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"parameter counts of the size curve ({DEFAULT_SIZES})")
    p.add_argument("--size-world", type=int, default=2, help="world of the size curve (default 2)")
    p.add_argument("--fqns", default=DEFAULT_FQNS, help=f"FQN counts of the FQN curve ({DEFAULT_FQNS})")
    p.add_argument("--fqn-world", type=int, default=1, help="world of the FQN curve (default 1)")
    p.add_argument("--curve-plan", default="fsdp2", help="plan of the size and FQN curves (default fsdp2)")
    p.add_argument("--repeats", type=int, default=3, help="round trips per curve point at most (default 3)")
    p.add_argument("--budget", type=float, default=1.0,
                   help="stop repeating a curve point once this many seconds are spent (default 1)")
    p.add_argument("--unflatten-max", type=int, default=DEFAULT_UNFLATTEN_MAX,
                   help=f"largest FQN count at which the reference's unflatten is run ({DEFAULT_UNFLATTEN_MAX})")
    p.add_argument("--compare-params", default="1e6,1e7", help="parameter counts of the vs-torch OSDs (1e6,1e7)")
    p.add_argument("--compare-fqns", default="1000", help="FQN counts of many-entry vs-torch OSDs (1000)")
    p.add_argument("--compare-world", type=int, default=2, help="world of the vs-torch comparison (default 2)")
    p.add_argument("--compare-repeats", type=int, default=4,
                   help="rounds per operation, alternating which side goes first (default 4: ABBAABBA)")
    p.add_argument("--parts", default="rate,size,fqns,torch", help="which parts to run (default all)")
    p.add_argument("--out", default=os.path.join(REPO, "docs"), help="where the doc and plots go (default docs/)")
    p.add_argument("--json", default=None, help="also write every measurement to this JSON file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    parts = {x.strip() for x in args.parts.split(",")}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `with` closes its world

    import torch

    cmd = shlex.join(["python", os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())] + sys.argv[1:])
    data = {
        "command": cmd, "torch": torch.__version__, "python": platform.python_version(),
        "cores": os.cpu_count(), "load_start": _loadavg(), "date": time.strftime("%Y-%m-%d"),
        "curve_plan": args.curve_plan, "unflatten_max": args.unflatten_max,
    }
    print(f"bench_growth: {cmd}\n  torch {data['torch']}, {data['cores']} cores, load {data['load_start']}", flush=True)
    t_start = time.perf_counter()
    start_fork_server()
    if "rate" in parts:
        data["rates"] = measure_rates([int(w) for w in args.worlds.split(",")],
                                      [p.strip() for p in args.plans.split(",")], args.seconds)
    if "size" in parts:
        data["size"] = measure_curve("size", _floats(args.sizes), args.size_world, args.curve_plan,
                                     args.repeats, args.budget)
    if "fqns" in parts:
        points = [int(x) for x in _floats(args.fqns)]
        data["fqns"] = measure_curve("fqns", points, args.fqn_world, args.curve_plan, args.repeats, args.budget)
        data["flatten"] = measure_flatten(points, args.unflatten_max)
    if "torch" in parts:
        cases = [(f"{int(p):.0e} parameters".replace("e+0", "e"), size_model(p), None)
                 for p in _floats(args.compare_params)]
        # Many small entries: each gather costs seconds (a collective per value), so 2 rounds (ABBA).
        cases += [(f"{int(n)} FQNs", fqn_model(int(n)), 2) for n in _floats(args.compare_fqns)]
        data["compare"] = measure_compare(cases, args.compare_world, "fsdp2", args.compare_repeats)
    data["wall_s"] = time.perf_counter() - t_start
    data["load_end"] = _loadavg()
    left = leftover_processes()
    data["children_left"] = left
    print(f"  wall time {data['wall_s']:.1f} s, load {data['load_end']}, children left: {left or 'none'}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    doc, text, why_not = _growth_report.write(data, args.out)
    print("\n" + text + "\n")
    if why_not:
        print(f"NO PLOTS: {why_not}", flush=True)
    print(f"wrote {doc}" + ("" if why_not else " and its plots"), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return 1 if left else 0


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
