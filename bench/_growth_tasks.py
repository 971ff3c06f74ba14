"""Rank-side tasks of bench_growth.py: one timed, memory-tracked round trip, and
the reference oracle against torch's state-dict APIs on one workload.

Why a module of its own: `WorldPool.run` pickles its task by reference, so the
tasks must be module-level functions of a module the ranks can import.  The
ranks fork from osdconform's fork server, which inherits the driver's
``sys.path`` when it starts; bench_growth.py puts ``bench/`` on ``sys.path``
before its first world, so ``_growth_tasks`` imports there.

How peak memory is measured (per rank, inside the rank): the kernel's resident
high-water mark of the process (``VmHWM``) is reset to the current resident
size by writing ``5`` to ``/proc/self/clear_refs``, the operation runs, and
the peak is ``VmHWM - VmRSS(before)``: the most resident memory the operation
added on top of what the process already held (its result included, when it
keeps one).  ``tracemalloc`` cannot see tensor storage (torch allocates it
with its own C++ allocator) and ``ru_maxrss`` never goes down, hence this.
For it to be honest, freed memory must leave the process: glibc keeps freed
heap memory (and raises its mmap threshold up to 32 MiB after the first large
free), so `return_freed_memory` pins that threshold at 64 KiB in the rank:
every tensor of 64 KiB or more gets its own mapping, returned on free.  That
costs a page fault per 4 KiB of new tensors, for reference and torch alike.
Where ``clear_refs`` cannot be written, the peak is reported as None.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from typing import Any, Callable, Iterator

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 64 * 1024
MIB = 1024 * 1024


def return_freed_memory() -> bool:
    """Make glibc give freed blocks of 64 KiB or more back to the kernel (see the module docstring)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


@contextlib.contextmanager
def peak_rss() -> Iterator[dict]:
    """Yield a dict that gets ``peak_mib`` (resident memory added at the peak) and ``rss_mib`` (before)."""
    out: dict[str, Any] = {"peak_mib": None, "rss_mib": None}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to VmRSS
        before = _status_kib("VmRSS")
    except OSError:
        before = None
    out["rss_mib"] = before / 1024 if before is not None else None
    yield out
    if before is not None:
        out["peak_mib"] = max(0, _status_kib("VmHWM") - before) / 1024


def timed(fn: Callable[[], Any]) -> tuple[float, float | None, Any]:
    """``(seconds, peak MiB added, result)`` of one call of `fn`, after a gc and a barrier.

    The barrier lines the ranks up, so a rank's time is the operation's own
    and not a wait for a late peer; the result is returned so that it stays
    alive (and counted) until the peak has been read.
    """
    import torch.distributed as dist

    gc.collect()
    dist.barrier()
    with peak_rss() as mem:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return seconds, mem["peak_mib"], result


# -- 2, 3. one round trip, timed, with its peak memory ------------------------------------


def roundtrip_point(ctx, scenario, backend_spec: str, options, repeats: int, budget_s: float) -> dict:
    """Run `properties.roundtrip` up to `repeats` times (fewer once `budget_s` is spent).

    Each run's summary is checked, as bench_roundtrip does.  Returns this
    rank's times, peaks and the resident size before the first run.
    """
    import torch.distributed as dist

    from osdconform import properties

    return_freed_memory()
    expected = {"state_entries": len(scenario.model.param_fqns()), "groups": len(scenario.optimizer.groups)}
    times, peaks, rss = [], [], None
    spent = 0.0
    for _ in range(repeats):
        gc.collect()
        dist.barrier()
        with peak_rss() as mem:
            t0 = time.perf_counter()
            summary = properties.roundtrip(ctx, scenario, backend_spec, options)
            dt = time.perf_counter() - t0
        if summary != expected:
            raise AssertionError(f"round trip returned {summary}, expected {expected}")
        rss = mem["rss_mib"] if rss is None else rss
        times.append(dt)
        peaks.append(mem["peak_mib"])
        spent += dt
        # Every rank must stop after the same run: roundtrip is collective.
        if agree_on_stop(spent >= budget_s):
            break
    return {"times": times, "peaks": peaks, "rss_mib": rss}


def agree_on_stop(stop: bool) -> bool:
    """True on every rank if any rank wants to stop (keeps the ranks' loop counts equal)."""
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1 if stop else 0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


# -- 4. the reference against torch on one workload ---------------------------------------


def _fast(fn: Callable[[], Any], make_arg: Callable[[], Any], min_s: float = 0.2, max_n: int = 10_000) -> float:
    """Seconds per call of a cheap local `fn(arg)`, over enough calls to fill `min_s`.

    The arguments are made before the clock starts (torch's flatten pops each
    group's ``params``, so every call needs its own copy of the groups).
    """
    n = 1
    while True:
        args = [make_arg() for _ in range(n)]
        t0 = time.perf_counter()
        for a in args:
            fn(a)
        dt = time.perf_counter() - t0
        if dt >= min_s or n >= max_n:
            return dt / n
        n = min(max_n, n * 4)


def _groups_copy(osd: dict) -> dict:
    return {"state": osd["state"], "param_groups": [dict(g) for g in osd["param_groups"]]}


def compare_point(ctx, scenario, repeats: int) -> dict:
    """Time and track the reference's gather / load / flatten / unflatten against torch's.

    Builds `scenario`'s workload (its plan applied), trains it one step, then
    measures each operation on both sides in ABBA order (reference, torch,
    torch, reference, ... `repeats` rounds), so that drift in the machine's
    load hits both alike.  Both sides start from the same live optimizer; the
    loads take the OSD each side gathered, and the two gathered OSDs are
    compared (``same_osd``).  Returns, per operation and side, this rank's
    times and peaks.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint import state_dict as dsd

    from osdconform import reference as ref
    from osdconform.compare import first_difference
    from osdconform.scenario import build_workload, train

    return_freed_memory()
    wl = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    train(wl, scenario.steps)
    module, model, optims = wl.module, wl.model, wl.optimizers
    optim = wl.optimizer
    full = dsd.StateDictOptions(full_state_dict=True)
    full_flat = dsd.StateDictOptions(full_state_dict=True, flatten_optimizer_state_dict=True)
    layout = ref.group_layout(module, optims)

    ref_osd = ref.full_osd(module, optims)
    torch_osd = dsd.get_optimizer_state_dict(model, optim, options=full)
    diff = first_difference(ref_osd, torch_osd)
    ref_flat = ref.flatten(ref_osd)
    torch_flat = dsd.get_optimizer_state_dict(model, optim, options=full_flat)
    ops: dict[str, dict[str, Callable[[], Any]]] = {
        "gather (full OSD)": {
            "reference": lambda: ref.full_osd(module, optims),
            "torch": lambda: dsd.get_optimizer_state_dict(model, optim, options=full),
        },
        "load (full OSD)": {
            "reference": lambda: ref.load_osd(module, optims, ref_osd),
            "torch": lambda: dsd.set_optimizer_state_dict(model, optim, torch_osd, options=full),
        },
        "gather, flattened": {
            "reference": lambda: ref.flatten(ref.full_osd(module, optims)),
            "torch": lambda: dsd.get_optimizer_state_dict(model, optim, options=full_flat),
        },
    }
    out: dict[str, Any] = {"same_osd": diff is None, "difference": None if diff is None else str(diff)}
    sizes = [v.numel() * v.element_size() for s in ref_osd["state"].values() for v in s.values() if hasattr(v, "numel")]
    out["osd_mib"] = sum(sizes) / MIB
    out["largest_tensor_mib"] = max(sizes, default=0) / MIB
    out["flat_keys"] = len(ref_flat)
    results: dict[str, dict[str, dict[str, list]]] = {}
    for name, sides in ops.items():
        res = results.setdefault(name, {s: {"times": [], "peaks": []} for s in sides})
        for r in range(repeats):
            order = ("reference", "torch") if r % 2 == 0 else ("torch", "reference")
            for side in order:
                seconds, peak, result = timed(sides[side])
                del result
                res[side]["times"].append(seconds)
                res[side]["peaks"].append(peak)
    # Flatten / unflatten alone: dict work, no collectives, no tensor copies.
    groups = [list(g) for g in layout]
    info = dsd._verify_options(model, (optim,), optim_only=True, options=full_flat)
    local = {
        "flatten": {
            "reference": _fast(ref.flatten, lambda: ref_osd),
            "torch": _fast(dsd._flatten_optim_state_dict, lambda: _groups_copy(torch_osd)),
        },
        "unflatten": {
            "reference": _fast(lambda flat: ref.unflatten(flat, groups), lambda: ref_flat),
            "torch": _fast(lambda flat: dsd._unflatten_optim_state_dict(optim, flat, info), lambda: torch_flat),
        },
    }
    for name, sides in local.items():
        results[name] = {side: {"times": [t], "peaks": [None]} for side, t in sides.items()}
    dist.barrier()
    out["ops"] = results
    return out


def flatten_point(ctx, scenario, with_reference_unflatten: bool) -> dict:
    """Seconds per flatten / unflatten of `scenario`'s trained OSD, reference and torch.

    Dict work only (no collectives, no tensor copies), so it runs in a world
    of 1 on a plain (plan ``none``) model.  The reference's unflatten is left
    out when `with_reference_unflatten` is false: it grows with the square of
    the FQN count (see docs/cost-growth.md) and would dominate the run.
    """
    from torch.distributed.checkpoint import state_dict as dsd

    from osdconform import reference as ref
    from osdconform.scenario import build_workload, train

    wl = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    train(wl, scenario.steps)
    flat_opts = dsd.StateDictOptions(flatten_optimizer_state_dict=True)
    osd = ref.full_osd(wl.module, wl.optimizers)
    torch_osd = dsd.get_optimizer_state_dict(wl.model, wl.optimizer)
    ref_flat = ref.flatten(osd)
    torch_flat = dsd.get_optimizer_state_dict(wl.model, wl.optimizer, options=flat_opts)
    groups = [list(g) for g in ref.group_layout(wl.module, wl.optimizers)]
    info = dsd._verify_options(wl.model, (wl.optimizer,), optim_only=True, options=flat_opts)
    out = {
        "flat_keys": len(ref_flat),
        "flatten": {
            "reference": _fast(ref.flatten, lambda: osd),
            "torch": _fast(dsd._flatten_optim_state_dict, lambda: _groups_copy(torch_osd)),
        },
        "unflatten": {
            "torch": _fast(lambda flat: dsd._unflatten_optim_state_dict(wl.optimizer, flat, info), lambda: torch_flat),
        },
    }
    if with_reference_unflatten:
        out["unflatten"]["reference"] = _fast(lambda flat: ref.unflatten(flat, groups), lambda: ref_flat)
    return out
