"""Property 11, a save in flight: training goes on while an async save writes, and the
checkpoint holds the state of the moment the save began.

An async save returns before its checkpoint is written (``dcp.async_save``
stages a copy, then writes in a thread; torchtitan's ``CheckpointManager``
the same), and the job goes on at once.  If the save did not copy what it
writes before returning, the optimizer's next step, or a load into the same
objects, changes the tensors under it, and the checkpoint holds a mixture of
two moments (torchtitan#930: a save that returned before its staging was done).
Nothing fails at the time; the job that resumes from it trains on wrong state.

`in_flight_training` and `in_flight_loading` start the save and keep the
optimizers busy (two more steps, in place, as every ``torch.optim`` optimizer
updates its moments; or another checkpoint of the same scenario loaded into
the live objects, which a load through a template of the live state dict
writes in place), wait, and load the checkpoint into fresh objects: their
reference gather must equal, bitwise, the source's gathered when the save
returned.  A backend that saves synchronously (``save_checkpoint`` returns
None) passes by construction.
"""

from __future__ import annotations

import os

import torch.distributed as dist

from ..backends import make_backend
from ..scenario import Scenario
from ._steps import (
    FRESH_SEED_OFFSET,
    assert_all_equal,
    build,
    finish_save,
    fresh,
    gather,
    load_state,
    save_state,
    source,
    summary,
    train_steps,
)


def in_flight_training(ctx, scenario: Scenario, backend_spec: str, options, directory: str) -> dict:
    """Two more steps while the save is in flight."""
    return _in_flight(ctx, scenario, backend_spec, options, directory, "train")


def in_flight_loading(ctx, scenario: Scenario, backend_spec: str, options, directory: str) -> dict:
    """Another checkpoint loaded into the live objects while the save is in flight."""
    return _in_flight(ctx, scenario, backend_spec, options, directory, "load")


#: The property step of each thing the job does while the save is in flight
#: (its name is the ``step`` expected-failure predicates see).
IN_FLIGHT = {"train": in_flight_training, "load": in_flight_loading}


def _in_flight(ctx, scenario: Scenario, backend_spec: str, options, directory: str, busy: str) -> dict:
    backend = make_backend(backend_spec)
    earlier, checkpoint = (os.path.join(directory, name) for name in ("earlier", "in-flight"))
    if ctx.rank == 0:
        os.makedirs(earlier)
        os.makedirs(checkpoint)
    dist.barrier()  # the folders exist before any rank writes into them
    src = source(ctx, scenario, backend)
    if busy == "load":
        # Another checkpoint of the same scenario (other initial values, so other
        # state; the same hyperparameters), to load into the source while it saves.
        with ctx.phase("build another"):
            other = build(ctx, scenario, backend, init_seed=scenario.seed + FRESH_SEED_OFFSET)
        with ctx.phase("train another"):
            train_steps(backend, other, scenario.steps)
        save_state(ctx, backend, other, options, earlier)
    with ctx.phase("start the save"):
        pending = backend.save_checkpoint(src, checkpoint, options)
    # After the call, as the round trip gathers after its save: a save that
    # changes the optimizer (torch-dcp's zero-gradient step) is another property's.
    at_save = gather(ctx, src, "source at the save")
    if busy == "train":
        with ctx.phase("train while the save is in flight"):
            train_steps(backend, src, 2, first_step=scenario.steps)
    else:
        with ctx.phase("load while the save is in flight"):
            load_state(ctx, backend, src, None, options, earlier)
    finish_save(ctx, pending)
    dst = fresh(ctx, scenario, backend)
    load_state(ctx, backend, dst, None, options, checkpoint)
    loaded = gather(ctx, dst, "loaded")
    with ctx.phase("compare"):
        assert_all_equal([(at_save, loaded, f"save in flight ({busy}: reference gather at the save vs loaded)")])
    return summary(at_save)
