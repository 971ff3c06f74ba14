"""Backends built only from the public adapter kit (`osdconform.backends`), for tests.

* `rank0_saver` (a factory with a required argument): a real storage backend
  that writes on rank 0 only, after sleeping `delay` seconds, and reads on
  every rank.  Without the suite's barrier between save and load the other
  ranks would look for the file before rank 0 has written it; across two
  torchrun "nodes", the ranks of the second read what the first wrote.
* `OwnLoop`: a training framework through the kit's `Framework` hooks (its own
  wrapping and its own loop); `OwnLoopForgetsAfterResume`, the same with a
  seeded fault only its own loop has.
* `Impostor`: a third-party backend whose ``name`` is a built-in's
  (``torch-save``); it must not inherit torch-save's shipped expected failures.
"""

from __future__ import annotations

import dataclasses
import os
import time

import torch

from osdconform.backends import Capabilities, apply_planned, split_osd, step_loss, to_canonical, to_native
from osdconform.backends.reference import ReferenceBackend

FILE_NAME = "optimizers.pt"


class Rank0Saver:
    name = "rank0-saver"
    capabilities = Capabilities(full=False, sharded=False, checkpoint=True, plans=frozenset({"none"}))

    def __init__(self, delay: float, under: str | None = None) -> None:
        self.delay = delay
        self.under = under

    def save_checkpoint(self, workload, directory, options):
        if self.under is not None and os.path.commonpath([self.under, directory]) != self.under:
            raise AssertionError(f"checkpoint directory {directory} is not under {self.under}")
        parts = [to_canonical(opt.state_dict(), workload.module, opt.param_groups) for opt in workload.optimizers]
        osd = {"state": {}, "param_groups": []}
        for part in parts:
            osd["state"].update(part["state"])
            osd["param_groups"] += part["param_groups"]
        if workload.rank == 0:
            time.sleep(self.delay)  # the other ranks reach their load long before this file exists
            torch.save(osd, os.path.join(directory, FILE_NAME))

    def load_checkpoint(self, workload, directory, options):
        osd = torch.load(os.path.join(directory, FILE_NAME), weights_only=True)
        parts = split_osd(osd, [len(opt.param_groups) for opt in workload.optimizers])
        for opt, part in zip(workload.optimizers, parts):
            opt.load_state_dict(to_native(part, workload.module, opt.param_groups))


def rank0_saver(*, delay: float, under: str | None = None) -> Rank0Saver:
    """A factory that needs its argument, so a run shows the spec's arguments arrived.

    With `under`, a save refuses a checkpoint directory outside it (so a run
    shows ``--osd-checkpoint-dir`` is where checkpoints go)."""
    return Rank0Saver(delay, under)


class Impostor(ReferenceBackend):
    name = "torch-save"
    capabilities = Capabilities(full=True, sharded=False, plans=frozenset({"none"}), max_world_size=2)


class OwnLoop:
    """A training framework built from the kit's `Framework` hooks.

    ``prepare`` wraps the model itself under plan ``ddp`` (plain torch DDP,
    not the suite's wrapping) and leaves plan ``none`` to the suite
    (`apply_planned`); it keeps a step counter in ``workload.framework``,
    which the get and set require, so a suite that skipped ``prepare`` fails
    here.  ``train`` runs its own loop over `step_loss`.
    """

    name = "own-loop"
    capabilities = Capabilities(full=True, sharded=False, plans=frozenset({"none", "ddp"}))
    #: Whether to skip the optimizer step of a resumed run's steps (a seeded fault).
    forgets_after_resume = False

    def prepare(self, workload):
        if workload.scenario.plan.kind == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(workload.module, find_unused_parameters=True)
            return dataclasses.replace(workload, model=model, framework={"steps": 0})
        return dataclasses.replace(apply_planned(workload), framework={"steps": 0})

    def train(self, workload, steps, first_step):
        for step in range(first_step, first_step + steps):
            for opt in workload.optimizers:
                opt.zero_grad(set_to_none=True)
            loss = step_loss(workload, step)
            if loss.requires_grad:
                loss.backward()
            if not (self.forgets_after_resume and first_step > 0):
                for opt in workload.optimizers:
                    opt.step()
            workload.framework["steps"] += 1

    def get_optimizer_state(self, workload, options):
        assert workload.framework is not None, "prepare() was not called"
        osd = {"state": {}, "param_groups": []}
        for opt in workload.optimizers:
            part = to_canonical(opt.state_dict(), workload.module, opt.param_groups)
            osd["state"].update(part["state"])
            osd["param_groups"] += part["param_groups"]
        return osd

    def set_optimizer_state(self, workload, osd, options):
        assert workload.framework is not None, "prepare() was not called"
        parts = split_osd(osd, [len(opt.param_groups) for opt in workload.optimizers])
        for opt, part in zip(workload.optimizers, parts):
            opt.load_state_dict(to_native(part, workload.module, opt.param_groups))


class OwnLoopForgetsAfterResume(OwnLoop):
    """`OwnLoop` whose loop does not step the optimizers in a resumed run: resume must fail."""

    name = "own-loop-forgets"
    forgets_after_resume = True
