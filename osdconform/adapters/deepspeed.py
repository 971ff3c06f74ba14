"""The ``deepspeed`` adapter: DeepSpeed's engine, its training step and its checkpoints.

``prepare`` hands the user's module and the suite's one ``torch.optim``
optimizer (the *client* optimizer) to ``deepspeed.initialize``, as a
training script does; ``train`` steps through ``engine.backward`` /
``engine.step``; the optimizer state travels through
``engine.save_checkpoint`` / ``engine.load_checkpoint`` (``checkpoint=True``).

Plans, mapped honestly onto what DeepSpeed runs, one per instance (the
factory argument ``stage``, ``--osd-backend 'deepspeed(stage=3)'``):

* ``stage=0`` runs plan ``ddp``: DeepSpeed's own data parallelism (it
  allreduces the gradients and steps the client optimizer as it is);
* ``stage`` 1 or 2 (the default) runs plan ``zero``: optimizer state (1),
  and gradients too (2), partitioned over the ranks.

Stage 3 is refused: there the client optimizer's groups hold no parameters
at all and its state is keyed by flat partitions that nothing public maps
back to a group, and the user's module keeps empty placeholders for its
parameters, so neither the oracle's view of the state nor its comparison of
parameters would mean anything.

Plan ``none`` (every rank trains the whole batch, no communication) has no
DeepSpeed counterpart: the engine always averages gradients over its data
parallel ranks.  The other plans are torch's own wrappers, which DeepSpeed
does not take.  DeepSpeed takes one optimizer: ``max_optimizers=1``.

Why a read view of the optimizer: under ZeRO stage >= 1 DeepSpeed replaces
the ``params`` of the client optimizer's groups by flat fp32 partitions
(this rank's slice of each group), so its ``state`` is keyed by those, not
by the user's parameters, while the suite's reference oracle reads
``workload.optimizers``' ``param_groups`` / ``state`` keyed by
``workload.module``'s parameters.  `ZeroOptimizerView` presents the state
per user parameter, cut out of the flat partitions by DeepSpeed's own
mapping of each parameter to its partition (what its
``safe_get_full_optimizer_state`` uses).  So the round-trip check of ZeRO
runs reads the state the way DeepSpeed lays it out; the resume property, which compares the trained parameters of a
resumed run with an uninterrupted one, is the check that does not depend on
that introspection.  Training steps the engine, never the view.

No in-memory get / set (``full=False``): DeepSpeed's per-parameter
``safe_set_full_optimizer_state`` sets tensors only, not the step count nor
the hyperparameters, so it is not a way to load a checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from osdconform.backends import Capabilities, step_loss

#: The tag every checkpoint is saved under (DeepSpeed's default is the step count).
TAG = "osdconform"
DEFAULT_STAGE = 2
#: What ``save_checkpoint`` copies beside a ZeRO checkpoint (see `DeepSpeedBackend.save_checkpoint`).
RECOVERY_SCRIPTS = ("zero_to_fp32.py", "zero_to_torch.py")


class ZeroOptimizerView:
    """The client optimizer as the user sees it, under ZeRO stage 1 or 2 (read only).

    ``param_groups``: the client optimizer's live groups (hyperparameters as
    DeepSpeed and its LR scheduler keep them) with ``params`` the user's
    parameters of that group, as they were before ``deepspeed.initialize``.
    ``state``: per user parameter, each tensor entry of its group's flat
    partition state made whole, and each other entry (Adam's ``step``, one
    per flat group) copied.  Reading ``state`` rebuilds it, with one
    allreduce per tensor: every rank must read it.

    How a tensor is made whole is what ``deepspeed.utils.get_full_hp_param``
    (behind ``safe_get_full_optimizer_state``) does: each rank copies the
    fragment DeepSpeed's mapping of the parameter (``param._hp_mapping``: the
    fragment's place in the parameter and in the flat partition) names, and
    an allreduce sums them.  The view reads the flat state itself instead of
    calling that function, because in DeepSpeed 0.19.8 it raises for state
    DeepSpeed holds: the per-parameter views of the state are linked once,
    after the first group's first step, so the parameters of every later
    group have none ("exp_avg not found in optimizer state fragment"), and an
    engine that loaded a checkpoint before its first step has none at all
    (a TypeError).  Those are defects of the introspection, not of the
    checkpoint, and the suite judges checkpoints (README, "deepspeed").
    """

    def __init__(self, client: torch.optim.Optimizer, user_params: list[list[torch.nn.Parameter]]) -> None:
        self.client = client
        self.user_params = user_params

    def __repr__(self) -> str:
        return f"ZeroOptimizerView({type(self.client).__name__})"

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [
            {**{k: v for k, v in group.items() if k != "params"}, "params": params}
            for group, params in zip(self.client.param_groups, self.user_params)
        ]

    @property
    def state(self) -> dict[torch.Tensor, dict[str, Any]]:
        out: dict[torch.Tensor, dict[str, Any]] = {}
        for group, params in zip(self.client.param_groups, self.user_params):
            (flat,) = group["params"]  # this rank's fp32 partition of the group
            flat_state = self.client.state.get(flat) or {}
            for p in params:
                entry = {}
                for key, value in flat_state.items():
                    if isinstance(value, torch.Tensor) and value.shape == flat.shape:
                        entry[key] = _whole(p, value)
                    else:
                        entry[key] = value.clone() if isinstance(value, torch.Tensor) else value
                if entry:
                    out[p] = entry
        return out


def _whole(param: torch.Tensor, flat_value: torch.Tensor) -> torch.Tensor:
    """`param`'s slice of every rank's flat partition value, as one tensor shaped like it (collective)."""
    import torch.distributed as dist

    whole = torch.zeros(param.numel(), dtype=flat_value.dtype, device=flat_value.device)
    mapping = getattr(param, "_hp_mapping", None)  # None: no element of it in this rank's partition
    if mapping is not None:
        lp, hp = mapping.lp_fragment_address, mapping.hp_fragment_address
        whole.narrow(0, lp.start, lp.numel).copy_(flat_value.narrow(0, hp.start, hp.numel))
    dist.all_reduce(whole)  # the fragments are disjoint: the sum is the whole
    return whole.view_as(param)


def _capabilities(stage: int) -> Capabilities:
    """One plan per instance: stage 0 runs plan ``ddp``, stages 1-3 plan ``zero``.

    One plan, not both: the core scenario space draws ``ddp`` whenever a
    backend supports it and ``zero`` only for one that supports none of its
    own plans, so an instance declaring both would never be drawn a ZeRO
    example outside ``--osd-space=full``.
    """
    plan = "ddp" if stage == 0 else "zero"
    return Capabilities(full=False, sharded=False, checkpoint=True, plans=frozenset({plan}), max_optimizers=1)


class DeepSpeedBackend:
    """DeepSpeed's engine (ZeRO stage 0 for plan ``ddp``, ``stage`` for plan ``zero``)."""

    name = "deepspeed"
    requires = {"deepspeed": "pip install 'osdconform[deepspeed]'"}
    #: For the default stage (2); an instance of another stage says its own plan.
    capabilities = _capabilities(DEFAULT_STAGE)

    def __init__(self, stage: int = DEFAULT_STAGE) -> None:
        if stage not in (0, 1, 2):
            raise ValueError(f"stage must be 0, 1 or 2, not {stage!r} (README, 'deepspeed', says why not 3)")
        self.stage = stage
        self.capabilities = _capabilities(stage)

    # -- Framework hooks ---------------------------------------------------

    def prepare(self, workload):
        import deepspeed

        # DeepSpeed's engine insists on LOCAL_RANK, which its launcher or
        # torchrun set; the suite's rank processes run one rank per device.
        local = workload.device.index if workload.device.type == "cuda" else workload.rank
        os.environ.setdefault("LOCAL_RANK", str(local))
        # The suite's process group exists: DeepSpeed wraps it, starts none.
        deepspeed.init_distributed(dist_backend="nccl" if workload.device.type == "cuda" else "gloo")
        (client,) = workload.optimizers
        user_params = [list(g["params"]) for g in client.param_groups]  # before ZeRO replaces them
        stage = self.stage  # its capabilities admit only its own plan (see `_capabilities`)
        config = {
            "train_micro_batch_size_per_gpu": 1,  # bookkeeping only: the suite feeds the batches
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": stage},
            "zero_allow_untested_optimizer": True,  # the suite's optimizers are torch.optim's
            "steps_per_print": 1 << 30,
        }
        scheduler = workload.schedulers[0] if workload.schedulers else None
        engine, _, _, _ = deepspeed.initialize(
            model=workload.module, optimizer=client, lr_scheduler=scheduler, config=config
        )
        view = client if stage == 0 else ZeroOptimizerView(client, user_params)
        return dataclasses.replace(workload, model=engine, optimizers=(view,), framework=engine)

    def train(self, workload, steps: int, first_step: int) -> None:
        engine = workload.framework
        for step in range(first_step, first_step + steps):
            loss = step_loss(workload, step)
            if loss.requires_grad:  # not when every parameter the step uses is frozen
                engine.backward(loss)
            engine.step()  # the optimizer step, and the LR scheduler's

    # -- storage -----------------------------------------------------------

    def save_checkpoint(self, workload, directory: str, options) -> None:
        workload.framework.save_checkpoint(directory, tag=TAG)
        if workload.rank == 0:
            # ZeRO checkpoints get copies of DeepSpeed's offline conversion
            # scripts beside them (zero_to_fp32.py, 38 KB), which load_checkpoint
            # never reads.  The error suite damages a checkpoint's largest
            # file to see that the load refuses it: with a small model that
            # would be a script, not the state.  So they are left out.
            for script in RECOVERY_SCRIPTS:
                path = os.path.join(directory, script)
                if os.path.exists(path):
                    os.remove(path)

    def load_checkpoint(self, workload, directory: str, options) -> None:
        engine = workload.framework
        # DeepSpeed's own errors go to the suite as they are (a damaged file's
        # names no file: an expected failure), so the adapter hides nothing.
        path, _ = engine.load_checkpoint(directory, tag=TAG, load_optimizer_states=True)
        if path is None:  # DeepSpeed only logs a warning when there is nothing to load
            raise FileNotFoundError(f"no DeepSpeed checkpoint with tag {TAG!r} under {directory}")
