"""Tasks that the tests run on every rank of a world (``WorldPool.run``).

`WorldPool` pickles a task by reference, so tasks must be module-level
functions of a module the rank processes can import; ``tests/conftest.py``
puts this directory on ``sys.path`` and spawned ranks inherit it.  Each task
takes the rank's `RankContext` first.  Checks are plain ``assert`` /
`assert_osd_equal`, so a failure comes back as a `PropertyViolation` naming
the rank and the phase.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import torch
from torch.distributed.tensor import DTensor, distribute_tensor

from osdconform import reference as ref
from osdconform.compare import assert_osd_equal
from osdconform.reference._fqn import user_fqn
from osdconform.scenario import Scenario, build_workload, train

# -- DTensor: shard_like / unshard against torch's own sharding ---------------

def _mesh(ctx, shape: tuple[int, ...]):
    """Built once per world (`scenario._apply.device_mesh`): a 2-D mesh creates process groups."""
    from osdconform.scenario._apply import device_mesh

    return device_mesh(ctx.device.type, shape)


def make_full(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """A deterministic tensor whose bits matter: distinct values, ``-0.0`` and NaN."""
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.int64:
        return torch.randint(-(2**62), 2**62, shape, generator=gen, dtype=torch.int64)
    t = (torch.randn(shape, generator=gen, dtype=torch.float64) * 100).to(dtype)
    flat = t.view(-1)
    flat[3::5] = -0.0
    flat[4::7] = float("nan")
    return t


def _garbage_like(t: torch.Tensor) -> torch.Tensor:
    return torch.full_like(t, 77)


def shard_unshard(ctx, shape, dtype, seed, mesh_shape, placements) -> tuple[int, ...]:
    """`shard_like` cuts as ``distribute_tensor`` does; `unshard` and ``full_tensor`` undo it.

    Returns this rank's local shape.
    """
    with ctx.phase("mesh"):
        mesh = _mesh(ctx, tuple(mesh_shape))
    full = make_full(shape, dtype, seed)
    with ctx.phase("distribute_tensor"):
        theirs = distribute_tensor(full, mesh, placements)
    # `like` has the right layout but meaningless values: shard_like must cut
    # `full`, not copy `like`.
    like = DTensor.from_local(
        _garbage_like(theirs.to_local()),
        mesh,
        theirs.placements,
        run_check=False,
        shape=full.shape,
        stride=full.stride(),
    )
    with ctx.phase("shard_like"):
        ours = ref.shard_like(full, like)
    assert isinstance(ours, DTensor)
    assert tuple(ours.stride()) == tuple(full.stride()), (ours.stride(), full.stride())
    assert_osd_equal(theirs, ours, context=f"rank {ctx.rank}: distribute_tensor vs shard_like")
    with ctx.phase("unshard (shard_like)"):
        assert_osd_equal(full, ref.unshard(ours), context="unshard(shard_like(full))")
    with ctx.phase("unshard (distribute_tensor)"):
        whole = ref.unshard(theirs)
        assert_osd_equal(full, whole, context="unshard(distribute_tensor(full))")
    # The whole tensor is a copy, also where no placement cuts (nothing gathered): a
    # full get that handed out the live local tensor changed with the next step.
    if whole.numel():
        same = whole.untyped_storage().data_ptr() == theirs.to_local().untyped_storage().data_ptr()
        assert not same, f"unshard hands out the local shard itself under {placements}"
    with ctx.phase("full_tensor"):
        assert_osd_equal(full, theirs.full_tensor(), context="distribute_tensor(full).full_tensor()")
    # The shard is a copy: writing to it leaves `full` alone.
    ours.to_local().zero_()
    assert_osd_equal(make_full(shape, dtype, seed), full, context="full after writing to its shard")
    return tuple(theirs.to_local().shape)


def dtensor_mismatch_messages(ctx) -> dict[str, str | None]:
    """What `compare` says about DTensors that differ (per rank: each compares its own shard)."""
    from torch.distributed.tensor import Replicate, Shard

    from osdconform.compare import first_difference

    mesh = _mesh(ctx, (ctx.world_size,))
    full = torch.arange(6, dtype=torch.float32)
    e = distribute_tensor(full, mesh, [Shard(0)])
    a = distribute_tensor(full, mesh, [Shard(0)])
    if ctx.rank == ctx.world_size - 1:
        a.to_local()[1] = -1.0
    out = {
        "local value": first_difference({"v": e}, {"v": a}),
        "placements": first_difference({"v": e}, {"v": distribute_tensor(full, mesh, [Replicate()])}),
        "vs plain tensor": first_difference({"v": e}, {"v": full}),
    }
    return {k: (str(d) if d is not None else None) for k, d in out.items()}


# -- OSD level: load(gather(x)) == x on an FSDP2 workload ---------------------


def _dtensor_values(osd: dict):
    for fqn, values in osd[ref.STATE].items():
        for name, v in values.items():
            if isinstance(v, DTensor):
                yield fqn, name, v


def load_gather_roundtrip(ctx, scenario: Scenario) -> dict:
    """full_osd -> load_osd into fresh objects -> full_osd is the same; likewise sharded."""
    with ctx.phase("build"):
        src = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    with ctx.phase("train"):
        train(src, scenario.steps)
    with ctx.phase("gather"):
        full = ref.full_osd(src.module, src.optimizers)
        sharded = ref.sharded_osd(src.module, src.optimizers)
    params = {user_fqn(n): p for n, p in src.module.named_parameters()}  # the model may be wrapped
    with ctx.phase("check gather"):
        for fqn, name, v in _dtensor_values(sharded):
            assert tuple(full[ref.STATE][fqn][name].shape) == tuple(params[fqn].shape)
            assert not isinstance(full[ref.STATE][fqn][name], DTensor)
            # An independent cross-check of the reference gather.
            assert_osd_equal(
                full[ref.STATE][fqn][name], v.full_tensor(), context=f"{fqn}.{name}: full_osd vs full_tensor"
            )

    with ctx.phase("load full"):
        dst = build_workload(scenario, rank=ctx.rank, device=ctx.device, init_seed=scenario.seed + 1)
        ref.load_osd(dst.module, dst.optimizers, full)
    with ctx.phase("compare full"):
        assert_osd_equal(full, ref.full_osd(dst.module, dst.optimizers), context="full: gather(load(x))")
        assert_osd_equal(
            sharded, ref.sharded_osd(dst.module, dst.optimizers), context="full load: local shards"
        )

    with ctx.phase("load sharded"):
        dst2 = build_workload(scenario, rank=ctx.rank, device=ctx.device, init_seed=scenario.seed + 2)
        ref.load_osd(dst2.module, dst2.optimizers, sharded)
    with ctx.phase("compare sharded"):
        assert_osd_equal(
            sharded, ref.sharded_osd(dst2.module, dst2.optimizers), context="sharded: gather(load(x))"
        )
        assert_osd_equal(full, ref.full_osd(dst2.module, dst2.optimizers), context="sharded load: full")

    return {
        "state_entries": len(full[ref.STATE]),
        "params": len(params),
        "dtensor_values": sum(1 for _ in _dtensor_values(sharded)),
        "empty_local_shards": sum(1 for *_, v in _dtensor_values(sharded) if v.to_local().numel() == 0),
    }


# -- pool lifecycle --------------------------------------------------------------


def rank_pid(ctx) -> int:
    return os.getpid()


def assert_fails_on(ctx, rank: int, phase: str) -> int:
    with ctx.phase(phase):
        assert ctx.rank != rank, f"rank {ctx.rank} found a violation"
    return ctx.rank


def sleep_on(ctx, rank: int | None, seconds: float, phase: str) -> int:
    """Rank `rank` (every rank if None) sleeps in `phase`; the others return."""
    if rank is None or ctx.rank == rank:
        with ctx.phase(phase):
            time.sleep(seconds)
    return ctx.rank


def exit_on(ctx, rank: int, code: int) -> int:
    with ctx.phase("exiting"):
        if ctx.rank == rank:
            os._exit(code)
    return ctx.rank


def sigkill_on(ctx, rank: int) -> int:
    with ctx.phase("killing itself"):
        if ctx.rank == rank:
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # not reached
    return ctx.rank


def exit_later(ctx, rank: int, delay: float, code: int) -> int:
    """Answer, then die `delay` seconds later while idle between tasks."""
    if ctx.rank == rank:
        threading.Thread(target=lambda: (time.sleep(delay), os._exit(code)), daemon=True).start()
    return ctx.rank


def echo(ctx, value):
    return value


# -- how ranks start (harness/_start.py) -----------------------------------------

#: Set by `leave_a_mark` in one world; a world that starts clean never sees it.
MARK = None


def leave_a_mark(ctx, value):
    """Change this module's state and torch's in the rank; return what it was before."""
    global MARK
    before = (MARK, torch.get_default_dtype())
    MARK = value
    torch.set_default_dtype(torch.float64)
    return before


def env_of_rank(ctx, *names: str) -> dict[str, str | None]:
    return {n: os.environ.get(n) for n in names}


def parent_of_rank(ctx) -> tuple[int, int]:
    """(the rank's parent pid, how many threads that parent runs)."""
    ppid = os.getppid()
    with open(f"/proc/{ppid}/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    return ppid, threads


def _refuse_to_load(why: str):
    raise RuntimeError(why)


class FailsToUnpickle:
    """Pickles fine in the driver; rebuilding it (on a rank) raises."""

    def __reduce__(self):
        return (_refuse_to_load, ("FailsToUnpickle cannot be rebuilt on a rank",))


# -- devices ---------------------------------------------------------------------


def cuda_seen(ctx) -> tuple[str | None, bool]:
    """The rank's CUDA_VISIBLE_DEVICES and whether its torch finds a GPU (`WorldPool`'s ``env``)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.is_available()


def raise_then_others(ctx, rank: int, others: str, seconds: float) -> int:
    """Rank `rank` raises in phase 'raise'; the others then wait in a barrier it never joins
    (``others="barrier"``) or compute for `seconds` first (``others="compute"``)."""
    if ctx.rank == rank:
        with ctx.phase("raise"):
            raise ValueError("raised on purpose")
    with ctx.phase(others):
        if others == "compute":
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                sum(range(1000))
        else:
            torch.distributed.barrier()
    return ctx.rank


# -- restarting the process group in place (lifecycle NewWorld) -----------------


def restart_and_use_the_new_world(ctx, tag: str) -> dict:
    """Build a mesh, restart the process group, then use the new world: a
    collective, a new mesh (not the old one from `device_mesh`'s cache) and a
    DTensor redistributed over it.  Returns what rank 0 saw."""
    import torch.distributed as dist
    from torch.distributed.tensor import Replicate

    from osdconform.scenario._apply import device_mesh

    old_world, old_mesh = dist.group.WORLD, device_mesh("cpu", (ctx.world_size,))
    ctx.restart_process_group(tag)
    total = torch.ones(1)
    dist.all_reduce(total)
    mesh = device_mesh("cpu", (ctx.world_size,))
    full = distribute_tensor(torch.arange(4.0), mesh).redistribute(mesh, [Replicate()]).to_local()
    try:
        dist.get_rank(old_world)
        old_group_registered = True
    except ValueError:
        old_group_registered = False
    return {
        "sum": total.item(), "new_group": dist.group.WORLD is not old_world, "new_mesh": mesh is not old_mesh,
        "gathered": full.tolist(), "old_group_registered": old_group_registered,
    }


def all_reduce_ones(ctx) -> float:
    import torch.distributed as dist

    total = torch.ones(1)
    dist.all_reduce(total)
    return total.item()


def unfreeze_trains_again(ctx, scenario: Scenario, fqn: str, directory: str) -> list[bool]:
    """Take a lifecycle's Freeze, Train, Unfreeze, Train on the live objects (the
    reference backend): whether `fqn` stayed put while frozen, requires grad after
    the unfreeze, and moved in the step after it."""
    from osdconform.backends import StateOptions
    from osdconform.backends.reference import ReferenceBackend
    from osdconform.lifecycle import Freeze, Train, Unfreeze
    from osdconform.lifecycle._replay import _Run
    from osdconform.properties._steps import build

    run = _Run(ctx, ReferenceBackend(), StateOptions(full=True), directory, scenario, "live")
    run.workload = build(ctx, scenario, run.backend)
    param, module = run.workload.module.get_parameter(fqn), fqn.rsplit(".", 1)[0]
    run.take(Train(1), 0)
    run.take(Freeze(module, 1), 1)  # from step 1 on
    before = param.detach().clone()
    run.take(Train(1), 1)
    still = torch.equal(param.detach(), before)
    run.take(Unfreeze(module), 2)
    run.take(Train(1), 2)
    return [still, param.requires_grad, not torch.equal(param.detach(), before)]


def added_group_trains(ctx, scenario: Scenario, add, directory: str) -> list:
    """Take Train, `add` (an AddParamGroup), Train on the live objects (the reference
    backend): the groups of the optimizer after it, whether the added parameters
    stood still before it, and whether they moved and have state after."""
    from osdconform.backends import StateOptions
    from osdconform.backends.reference import ReferenceBackend
    from osdconform.lifecycle import Train
    from osdconform.lifecycle._replay import _Run
    from osdconform.properties._steps import build

    run = _Run(ctx, ReferenceBackend(), StateOptions(full=True), directory, scenario, "live")
    run.workload = build(ctx, scenario, run.backend)
    params = [run.workload.module.get_parameter(f) for f in add.group.params]
    before = [p.detach().clone() for p in params]
    run.take(Train(1), 0)
    still = all(torch.equal(p.detach(), b) for p, b in zip(params, before))
    run.take(add, 1)
    run.take(Train(1), 1)
    opt = run.workload.optimizers[add.optimizer]
    moved = all(not torch.equal(p.detach(), b) for p, b in zip(params, before))
    return [len(opt.param_groups), still, moved, all(opt.state.get(p) for p in params)]
