"""The rank launcher of reproducer scripts: spawn the ranks, run the step, judge.

Why a module of its own: it is code, not data, so it is linted, imported and
tested like the rest of osdconform.  `reporting._repro` embeds this module's
source (between the BEGIN and END marker lines) in every reproducer script it
writes, so a script stays standalone as before: it imports osdconform only
for the scenario classes, the device kinds and the property step, and keeps
working across osdconform versions (a bisection runs an old script against
new code and the other way round) because its launcher travels with it.

What the embedded part needs from the script are the module-level names
at the end of this module: its metadata (``TEST``, ``PROPERTY``, ``STEP``, ``BACKEND``,
``DEVICE``), the example (``SCENARIO``, ``OPTIONS``, ``EXTRA``), which
``EXTRA`` positions are directories made fresh per run (``FRESH_DIRECTORIES``)
and the default ``--timeout`` (``DEFAULT_TIMEOUT``).  An example that ran in
several worlds one after another (a lifecycle that reshards into other world
sizes) also lists the worlds before the failing one, ``PRIOR``: ``(scenario,
extra)`` pairs run first, in order, each in a world of its own, sharing the
fresh directories (what one world saves, the next loads).  Here they are
placeholders, so the module imports (and its helpers can be tested) on its own.
"""

# -- BEGIN: embedded in every reproducer script (see `_repro.render_script`) --
import argparse
import contextlib
import faulthandler
import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import timedelta

import torch  # noqa: F401 (the scripts have always loaded torch first)
import torch.distributed as dist
import torch.multiprocessing as mp

STARTUP_TIMEOUT = 300.0
STACKS = None  # this rank's stack-dump file, kept open for faulthandler


class Context:
    """What a property step sees of its rank (the harness's RankContext, minimal)."""

    def __init__(self, rank, world_size, device, scratch):
        self.rank, self.world_size, self.device = rank, world_size, device
        self.current_phase = "start"
        self._phase_file = os.path.join(scratch, f"phase-{rank}")
        self.tmpdir = os.path.join(scratch, f"rank{rank}")
        os.makedirs(self.tmpdir, exist_ok=True)

    def set_phase(self, name):
        self.current_phase = name
        with open(self._phase_file, "w") as f:
            f.write(name)

    @contextlib.contextmanager
    def phase(self, name):
        self.set_phase(name)
        yield


def load_step(path):
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def worlds():
    """``(scenario, extra)`` of each world the script runs, in order: `PRIOR`, then the example."""
    return tuple(PRIOR) + ((SCENARIO, EXTRA),)


def rank_main(rank, world_size, scratch, timeout, index=None):
    from osdconform.harness import device_kind

    scenario, example_extra = worlds()[-1 if index is None else index]
    shared, scratch = scratch, scratch if index is None else os.path.join(scratch, f"world-{index}")

    # Stack dump on a hang, to a file of this rank's own: ranks dumping to one
    # stream at once would interleave character by character.
    global STACKS
    STACKS = open(os.path.join(scratch, f"stacks-{rank}"), "w")
    faulthandler.register(signal.SIGUSR1, file=STACKS, all_threads=True)
    kind = device_kind(DEVICE)
    device = kind.setup(rank)
    dist.init_process_group(
        kind.pg_backend, init_method="file://" + os.path.join(scratch, "rendezvous"),
        rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout),
    )
    step = load_step(STEP)
    ctx = Context(rank, world_size, device, scratch)
    ctx.set_phase("joined")  # the timeout starts once every rank got here
    try:
        extra = [
            os.path.join(shared, f"directory-{i}") if i in FRESH_DIRECTORIES else value
            for i, value in enumerate(example_extra)
        ]
        step(ctx, scenario, BACKEND, OPTIONS, *extra)
    except BaseException as exc:
        print(f"rank {rank}: {type(exc).__name__} in phase {ctx.current_phase!r}", file=sys.stderr)
        raise
    # Stay until every rank is done, as a warm world's rank would: a rank that
    # left early would break a collective another rank still waits in (and a
    # barrier here could complete it and hide a hang).
    open(os.path.join(scratch, f"done-{rank}"), "w").close()
    while not all(os.path.exists(os.path.join(scratch, f"done-{r}")) for r in range(world_size)):
        time.sleep(0.05)
    dist.destroy_process_group()


def phases(scratch, world_size):
    out = []
    for rank in range(world_size):
        try:
            with open(os.path.join(scratch, f"phase-{rank}")) as f:
                out.append(f"rank {rank} in {f.read()!r}")
        except OSError:
            out.append(f"rank {rank} not started")
    return ", ".join(out)


def print_stacks(scratch, world_size, wait=10.0):
    """Print each rank's stack dump, one after another, once its size is steady."""
    sizes, deadline = {}, time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = {}
        for rank in range(world_size):
            with contextlib.suppress(OSError):
                now[rank] = os.path.getsize(os.path.join(scratch, f"stacks-{rank}"))
        if now == sizes and all(now.get(rank) for rank in range(world_size)):
            break
        sizes = now
    for rank in range(world_size):
        with contextlib.suppress(OSError), open(os.path.join(scratch, f"stacks-{rank}")) as f:
            print(f"--- rank {rank}: stacks ---\n{f.read()}", end="", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds before the example counts as hung (default: %(default)s)")
    args = parser.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="osdconform-repro-")
    for i in FRESH_DIRECTORIES:
        os.makedirs(os.path.join(scratch, f"directory-{i}"))
    try:
        several = len(worlds()) > 1
        for index, (scenario, _) in enumerate(worlds()):
            world_size = scenario.world_size
            which = f" (world {index + 1} of {len(worlds())})" if several else ""
            print(f"{TEST}: property {PROPERTY!r} of backend {BACKEND!r} on {world_size} rank(s){which}",
                  flush=True)
            if several:
                os.makedirs(os.path.join(scratch, f"world-{index}"))
            code = run_world(scratch, world_size, args.timeout, index if several else None)
            if code:
                return code
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("PASSED: the property holds for this scenario", flush=True)
    return 0


def run_world(shared, world_size, timeout, index):
    """Run one world's ranks to the end; 1 if the step failed, hung or a rank died, else 0."""
    scratch = shared if index is None else os.path.join(shared, f"world-{index}")
    procs = mp.start_processes(
        rank_main, args=(world_size, shared, timeout, index), nprocs=world_size,
        join=False, start_method="spawn",
    )
    # Starting ranks (importing torch, joining the group) does not count
    # toward the timeout, but may not take forever either.
    deadline = time.monotonic() + max(STARTUP_TIMEOUT, timeout)
    started = False
    try:
        while not procs.join(timeout=0.5):
            if not started and all(
                os.path.exists(os.path.join(scratch, f"phase-{r}")) for r in range(world_size)
            ):
                started = True
                deadline = time.monotonic() + timeout
            if time.monotonic() > deadline:
                waited = timeout if started else max(STARTUP_TIMEOUT, timeout)
                print(f"FAILED: hang: no answer after {waited:.0f} s "
                      f"(last phases: {phases(scratch, world_size)})", flush=True)
                for proc in procs.processes:
                    if proc.is_alive():
                        os.kill(proc.pid, signal.SIGUSR1)
                print_stacks(scratch, world_size)
                for proc in procs.processes:
                    proc.kill()
                    proc.join()
                return 1
    except mp.ProcessRaisedException as exc:
        print(f"FAILED: {exc}", flush=True)
        return 1
    except mp.ProcessExitedException as exc:
        print(f"FAILED: rank died: {exc} (last phases: {phases(scratch, world_size)})", flush=True)
        return 1
    return 0
# -- END of the embedded part --


# Placeholders for the names a reproducer script defines (not embedded):
# functions above read them at call time, as the script's own globals.
TEST = PROPERTY = STEP = BACKEND = DEVICE = ""
SCENARIO = OPTIONS = None
EXTRA = FRESH_DIRECTORIES = PRIOR = ()
DEFAULT_TIMEOUT = 120.0
