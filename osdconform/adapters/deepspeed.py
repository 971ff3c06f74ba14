"""The ``deepspeed`` adapter: DeepSpeed's engine, its training step and its checkpoints.

``prepare`` hands the user's module and the suite's one ``torch.optim``
optimizer (the *client* optimizer) to ``deepspeed.initialize``, as a
training script does; ``train`` steps through ``engine.backward`` /
``engine.step``; the optimizer state travels through
``engine.save_checkpoint`` / ``engine.load_checkpoint`` (``checkpoint=True``).

Plans, mapped honestly onto what DeepSpeed runs:

* ``ddp``  -> ZeRO stage 0: DeepSpeed's own data parallelism (it allreduces
  the gradients and steps the client optimizer as it is);
* ``zero`` -> ZeRO stage ``stage`` (the factory argument,
  ``--osd-backend 'deepspeed(stage=3)'``; default 2).

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
per user parameter, rebuilt from DeepSpeed's own public introspection
(``deepspeed.utils.safe_get_full_optimizer_state``, a collective).  So the
round-trip and fidelity checks of ZeRO runs read the state the way DeepSpeed
says it is; the resume property, which compares the trained parameters of a
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


class ZeroOptimizerView:
    """The client optimizer as the user sees it, under ZeRO stage >= 1 (read only).

    ``param_groups``: the client optimizer's live groups (hyperparameters as
    DeepSpeed and its LR scheduler keep them) with ``params`` the user's
    parameters of that group, as they were before ``deepspeed.initialize``.
    ``state``: per user parameter, each tensor entry of its group's flat
    partition state made whole by ``safe_get_full_optimizer_state`` (a
    collective: every rank must read it), and each other entry (Adam's
    ``step``, one per flat group) copied.  Reading ``state`` rebuilds it.
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
        from deepspeed.utils import safe_get_full_optimizer_state

        out: dict[torch.Tensor, dict[str, Any]] = {}
        for group, params in zip(self.client.param_groups, self.user_params):
            flat = group["params"][0]
            flat_state = self.client.state.get(flat) or {}
            for p in params:
                entry = {}
                for key, value in flat_state.items():
                    if isinstance(value, torch.Tensor) and value.shape == flat.shape:
                        entry[key] = safe_get_full_optimizer_state(p, key)
                    else:
                        entry[key] = value.clone() if isinstance(value, torch.Tensor) else value
                if entry:
                    out[p] = entry
        return out


class DeepSpeedBackend:
    """DeepSpeed's engine (ZeRO stage 0 for plan ``ddp``, ``stage`` for plan ``zero``)."""

    name = "deepspeed"
    requires = {"deepspeed": "pip install 'osdconform[deepspeed]'"}
    capabilities = Capabilities(
        full=False, sharded=False, checkpoint=True, plans=frozenset({"ddp", "zero"}), max_optimizers=1
    )

    def __init__(self, stage: int = 2) -> None:
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be a ZeRO stage 1, 2 or 3 (plan 'ddp' is stage 0), not {stage!r}")
        self.stage = stage

    # -- Framework hooks ---------------------------------------------------

    def prepare(self, workload):
        import deepspeed

        sc = workload.scenario
        # DeepSpeed's engine insists on LOCAL_RANK, which its launcher or
        # torchrun set; the suite's rank processes run one rank per device.
        local = workload.device.index if workload.device.type == "cuda" else workload.rank
        os.environ.setdefault("LOCAL_RANK", str(local))
        # The suite's process group exists: DeepSpeed wraps it, starts none.
        deepspeed.init_distributed(dist_backend="nccl" if workload.device.type == "cuda" else "gloo")
        (client,) = workload.optimizers
        user_params = [list(g["params"]) for g in client.param_groups]  # before ZeRO replaces them
        stage = 0 if sc.plan.kind == "ddp" else self.stage
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

    def load_checkpoint(self, workload, directory: str, options) -> None:
        engine = workload.framework
        path, _ = engine.load_checkpoint(directory, tag=TAG, load_optimizer_states=True)
        if path is None:  # DeepSpeed only logs a warning when there is nothing to load
            raise FileNotFoundError(f"no DeepSpeed checkpoint with tag {TAG!r} under {directory}")
