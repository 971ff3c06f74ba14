"""Shared pieces of the round-trip benchmark: the scenario, the stand-in context,
the bare "floor" world, and process hygiene helpers.

Everything that runs in a rank process is a module-level function here so that
the ``spawn`` start method can pickle it by reference (``bench/`` is on
``sys.path`` of the driver, and spawned children inherit the driver's
``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from typing import Any, Iterator

from osdconform.harness import _worker

#: The one fixed scenario per world size (see `scenario_for`).
DIMS = (5, 3, 2)
BIAS = (True, True)
OPTIMIZER = "adam"
STEPS = 1
SEED = 0


def scenario_for(world: int, plan: str = "fsdp2"):
    """The benchmark's scenario at `world`: MLP 5->3->2 with biases, Adam (one
    group, torch defaults), `plan` on the root module, 1 training step, seed 0."""
    from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, PlanSpec, Scenario

    model = MLPSpec(dims=DIMS, bias=BIAS)
    optimizer = OptimizerSpec(OPTIMIZER, (GroupSpec(params=model.param_fqns()),))
    return Scenario(
        seed=SEED,
        world_size=world,
        model=model,
        optimizers=(optimizer,),
        plan=PlanSpec(plan),
        steps=STEPS,
    )


def expected_summary(scenario) -> dict:
    """What `properties.roundtrip` returns for `scenario` (every harness checks it)."""
    return {"state_entries": len(scenario.model.param_fqns()), "groups": len(scenario.optimizer.groups)}


def options_for(name: str):
    from osdconform.backends import StateOptions

    if name == "full":
        return StateOptions()
    if name == "sharded":
        return StateOptions(full=False)
    raise ValueError(f"unknown OSD form {name!r} (full|sharded)")


class StandInCtx:
    """The minimum `properties.roundtrip` needs from a ctx, with no reporting:
    identity, device, ``tmpdir=None``, and no-op ``phase`` / ``set_phase``."""

    def __init__(self, rank: int, world_size: int, device: Any) -> None:
        self.rank = rank
        self.world_size = world_size
        self.device = device
        self.tmpdir = None
        self.current_phase = "start"

    def set_phase(self, name: str) -> None:
        pass

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        yield


# The floor's ranks die with their parent exactly as osdconform's do.
die_with_parent = _worker.die_with_driver


# -- the floor: a bare warm world, no dispatch --------------------------------


def _floor_rank(rank, world, port, scenario, backend_spec, options, expected, conn, parent_pid):
    """A floor rank: join gloo once, then run blocks of plain roundtrip loops.

    The driver sends ``("run", n)``; the rank answers ``("done", seconds)``
    where seconds is measured from a barrier before the loop to a barrier after
    it (so it is the slowest rank's time, as for the other harnesses).
    """
    die_with_parent(parent_pid)
    try:
        import torch
        import torch.distributed as dist

        from osdconform import properties

        torch.set_num_threads(1)  # the same as osdconform's ranks
        timeout = timedelta(seconds=600)
        store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timeout)
        dist.init_process_group(
            "gloo", store=dist.PrefixStore("floor", store), rank=rank, world_size=world, timeout=timeout
        )
        ctx = StandInCtx(rank, world, torch.device("cpu"))
        roundtrip = properties.roundtrip
    except BaseException as exc:  # noqa: BLE001 - reported to the driver
        conn.send(("error", f"start: {exc!r}"))
        return
    conn.send(("ready", None))
    try:
        while True:
            kind, n = conn.recv()
            if kind == "stop":
                break
            try:
                dist.barrier()
                t0 = time.perf_counter()
                for _ in range(n):
                    summary = roundtrip(ctx, scenario, backend_spec, options)
                    assert summary == expected, summary
                dist.barrier()
                conn.send(("done", time.perf_counter() - t0))
            except BaseException:  # noqa: BLE001
                import traceback

                conn.send(("error", traceback.format_exc()))
                return
    except EOFError:
        pass
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


class FloorWorld:
    """`world` spawned rank processes that run `_floor_rank`.  A context manager:
    every rank is stopped (and killed if it does not stop) on exit, error or not."""

    def __init__(self, world: int, scenario, backend_spec: str, options, *, timeout: float = 600.0):
        import multiprocessing as mp

        import torch.distributed as dist

        self.world = world
        self.timeout = timeout
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        t0 = time.perf_counter()
        self._store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
        ctx = mp.get_context("spawn")
        try:
            for rank in range(world):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_floor_rank,
                    args=(rank, world, self._store.port, scenario, backend_spec, options,
                          expected_summary(scenario), child, os.getpid()),
                    name=f"osdbench-floor-w{world}-r{rank}",
                    daemon=True,
                )
                proc.start()
                child.close()
                self.procs.append(proc)
                self.conns.append(parent)
            self._gather("ready")
        except BaseException:
            self.close()
            raise
        self.spawn_s = time.perf_counter() - t0

    def _gather(self, expected_kind: str) -> list[Any]:
        from multiprocessing.connection import wait

        deadline = time.monotonic() + self.timeout
        values: dict[int, Any] = {}
        while len(values) < self.world:
            pending = [r for r in range(self.world) if r not in values]
            objs = {self.conns[r]: r for r in pending}
            objs.update({self.procs[r].sentinel: r for r in pending})
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"floor world of {self.world}: ranks {pending} timed out")
            for obj in wait(list(objs), timeout=remaining):
                r = objs[obj]
                if r in values:
                    continue
                try:
                    kind, payload = self.conns[r].recv()
                except (EOFError, OSError):
                    raise RuntimeError(
                        f"floor world of {self.world}: rank {r} died (exit {self.procs[r].exitcode})"
                    ) from None
                if kind == "error":
                    raise RuntimeError(f"floor world of {self.world}: rank {r} failed:\n{payload}")
                if kind != expected_kind:
                    raise RuntimeError(f"floor rank {r}: expected {expected_kind!r}, got {kind!r}")
                values[r] = payload
        return [values[r] for r in range(self.world)]

    def run_block(self, n: int) -> float:
        """Run `n` round trips on every rank; the barrier-to-barrier time (max over ranks)."""
        for conn in self.conns:
            conn.send(("run", n))
        return max(self._gather("done"))

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            if proc.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    conn.send(("stop", 0))
        deadline = time.monotonic() + 5.0
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join(5.0)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []
        self._store = None

    def __enter__(self) -> "FloorWorld":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def child_pids(pid: int | None = None) -> list[int]:
    """Live PIDs whose parent is `pid` (default: this process), from /proc.

    multiprocessing's resource tracker (a helper the ``spawn`` method starts
    once per driver, which exits with it) is not counted."""
    pid = os.getpid() if pid is None else pid
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces: the fields after the last ')' are fixed
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != pid or fields[0] == "Z":
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        if "resource_tracker" in cmdline:
            continue
        out.append(int(entry))
    return out


def group_members(pgid: int) -> list[tuple[int, str]]:
    """Live ``(pid, cmdline)`` of the processes in process group `pgid`, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        out.append((int(entry), cmd))
    return out
