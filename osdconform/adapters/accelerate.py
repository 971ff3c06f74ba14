"""The ``accelerate`` adapter: Hugging Face Accelerate's ``prepare``, training step and checkpoints.

What a user of Accelerate writes, one ``Accelerator`` per example:

* ``prepare`` (the kit's `Framework` hook) builds ``Accelerator(cpu=...)`` and
  hands it the user's module and each optimizer (``accelerator.prepare``):
  the model comes back as is in one process and as Accelerate's DDP in
  several, each optimizer as an ``AcceleratedOptimizer``, which proxies the
  user's optimizer (its ``param_groups`` and ``state``), so the suite's
  reference oracle keeps reading them;
* ``train`` runs Accelerate's step: ``accelerator.backward`` and the
  ``AcceleratedOptimizer``'s ``zero_grad`` / ``step``.  LR schedulers are not
  prepared: an ``AcceleratedScheduler`` steps once per process per call (by
  design, for the larger global batch), which is another schedule than the
  scenario's; the suite steps and restores them itself;
* in memory, the full OSD is the prepared optimizers' ``state_dict`` /
  ``load_state_dict`` (what Accelerate offers, Accelerate passes them through
  to torch.optim), converted to the canonical FQN-keyed form;
* through storage, ``accelerator.save_state`` / ``load_state`` on a directory.

The suite runs ranks in a process group it created, without the environment
``accelerate launch`` sets, and Accelerate reads the world from that
environment, so the adapter sets RANK / WORLD_SIZE / LOCAL_RANK /
LOCAL_WORLD_SIZE from the live group first (torchrun has set them already).
Accelerate's state is a process-wide singleton: it is reset before each
``Accelerator`` (as Accelerate's own tests do), so no example inherits
another's.

Plans: ``none`` and ``ddp`` (one process or Accelerate's DDP; under ``none``
with several ranks, replicas that train alone, Accelerate is not given the
model: it would make it DDP).  Accelerate's FSDP and DeepSpeed need a GPU:
on CPU Accelerate runs several processes as DDP whatever plugin it is given,
so FSDP is reported as needing a GPU (``gpu_plans``).  On CUDA ``prepare``
builds it with Accelerate's ``FullyShardedDataParallelPlugin`` (the plan's
version and options; the root is the only unit, the plan's ``shard`` units
are not applied), and the in-memory full OSD goes through torch's
``get/set_optimizer_state_dict``, as Accelerate's own FSDP saving does.  That
path has not been run on a GPU yet (see README).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

from osdconform.backends import Capabilities, split_osd, step_loss, to_canonical, to_native

#: Plans Accelerate builds with its FSDP plugin, on CUDA only.
FSDP_PLANS = frozenset({"fsdp1", "fsdp2"})


def _set_launch_environment() -> None:
    """What ``accelerate launch`` / torchrun export, taken from the live process group."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    os.environ["RANK"] = str(dist.get_rank())
    os.environ["WORLD_SIZE"] = str(dist.get_world_size())
    os.environ.setdefault("LOCAL_RANK", str(dist.get_rank()))
    os.environ.setdefault("LOCAL_WORLD_SIZE", str(dist.get_world_size()))


def _fsdp_plugin(plan):
    """Accelerate's FSDP plugin for an FSDP plan: its version and options; the root is the only unit."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    if plan.kind == "fsdp1":
        return FullyShardedDataParallelPlugin(
            fsdp_version=1, sharding_strategy=plan.sharding_strategy, use_orig_params=plan.use_orig_params
        )
    return FullyShardedDataParallelPlugin(fsdp_version=2, reshard_after_forward=plan.reshard_after_forward)


def _new_accelerator(workload):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    _set_launch_environment()
    threads = torch.get_num_threads()  # Accelerate sets it from the core count on multi-CPU
    kwargs: dict[str, Any] = {
        "cpu": workload.device.type == "cpu",
        # Unused branches and parameters frozen mid-run get no gradient: DDP must look for them.
        "kwargs_handlers": [DistributedDataParallelKwargs(find_unused_parameters=True)],
    }
    if workload.scenario.plan.kind in FSDP_PLANS:
        kwargs["fsdp_plugin"] = _fsdp_plugin(workload.scenario.plan)
    try:
        return Accelerator(**kwargs)
    finally:
        torch.set_num_threads(threads)


class AccelerateBackend:
    """Accelerate's own wrapping, step and checkpoints; in memory its optimizers' state dicts."""

    name = "accelerate"
    requires = {"accelerate": "pip install 'osdconform[accelerate]'"}
    capabilities = Capabilities(
        full=True,
        sharded=False,
        checkpoint=True,
        plans=frozenset({"none", "ddp"}),
        gpu_plans=FSDP_PLANS,
    )

    def prepare(self, workload):
        kind = workload.scenario.plan.kind
        accelerator = _new_accelerator(workload)
        optimizers = list(workload.optimizers)
        if kind == "none" and accelerator.num_processes > 1:
            # Independent replicas: Accelerate would wrap the model in DDP.  evaluation_mode
            # skips the wrapping but still registers the model, so save_state writes it as under
            # every other plan (without it a checkpoint of plan none lacked the model file, and
            # loading it under ddp failed: a reshard from world 4 to world 2 met that).
            model = accelerator.prepare_model(workload.module, evaluation_mode=True)
            prepared = accelerator.prepare(*optimizers)
        else:
            model, *prepared = accelerator.prepare(workload.module, *optimizers)
        prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
        return dataclasses.replace(workload, model=model, optimizers=tuple(prepared), framework=accelerator)

    def train(self, workload, steps: int, first_step: int) -> None:
        accelerator = workload.framework
        specs = workload.scenario.optimizers
        for step in range(first_step, first_step + steps):
            for opt in workload.optimizers:
                opt.zero_grad(set_to_none=True)
            loss = step_loss(workload, step)
            if loss.requires_grad:  # not when every parameter the step uses is frozen
                accelerator.backward(loss)
            for spec, opt in zip(specs, workload.optimizers):
                if not spec.needs_closure:
                    opt.step()
            for spec, opt in zip(specs, workload.optimizers):
                if spec.needs_closure:  # LBFGS re-evaluates the loss of this step
                    opt.step(self._closure(workload, opt, step))
            for sched in workload.schedulers:
                sched.step()

    @staticmethod
    def _closure(workload, opt, step: int):
        """Re-evaluate step `step`'s loss; under data parallelism its mean over ranks.

        So every rank's LBFGS takes the same decisions (and runs the same
        number of DDP forward/backward passes), as on one process."""
        accelerator = workload.framework
        sc = workload.scenario

        def closure():
            opt.zero_grad(set_to_none=True)
            value = step_loss(workload, step)
            if value.requires_grad:
                accelerator.backward(value)
            if sc.plan.data_parallel and sc.world_size > 1:
                parts = [torch.empty_like(value) for _ in range(sc.world_size)]
                dist.all_gather(parts, value.detach().contiguous())
                value = torch.stack(parts).sum() / sc.world_size
            return value

        return closure

    def get_optimizer_state(self, workload, options) -> dict[str, Any]:
        if workload.scenario.plan.kind in FSDP_PLANS:  # sharded state: gathered as Accelerate's FSDP saving does
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            return get_optimizer_state_dict(workload.model, _torch_optimizers(workload),
                                            options=StateDictOptions(full_state_dict=True))
        osd: dict[str, Any] = {"state": {}, "param_groups": []}
        for opt in workload.optimizers:
            part = to_canonical(opt.state_dict(), workload.module, opt.param_groups)
            osd["state"].update(part["state"])
            osd["param_groups"] += part["param_groups"]
        return osd

    def set_optimizer_state(self, workload, osd: dict[str, Any], options) -> None:
        if workload.scenario.plan.kind in FSDP_PLANS:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(workload.model, _torch_optimizers(workload), osd,
                                     options=StateDictOptions(full_state_dict=True))
            return
        parts = split_osd(osd, [len(opt.param_groups) for opt in workload.optimizers])
        # Convert every part before loading any, so a bad FQN changes nothing.
        natives = [to_native(part, workload.module, opt.param_groups) for opt, part in zip(workload.optimizers, parts)]
        for opt, native in zip(workload.optimizers, natives):
            opt.load_state_dict(native)

    def save_checkpoint(self, workload, directory: str, options) -> None:
        workload.framework.save_state(directory)

    def load_checkpoint(self, workload, directory: str, options) -> None:
        workload.framework.load_state(directory)


def _torch_optimizers(workload) -> list:
    """The user's torch optimizers inside the ``AcceleratedOptimizer`` s (torch's state-dict API wants them)."""
    return [getattr(opt, "optimizer", opt) for opt in workload.optimizers]
