"""Build a scenario's objects on one rank, and train them.

Every rank calls `build_workload` with the same scenario and gets the same
model initialisation, the same param groups and the same data; the plan decides
how that model is split across ranks.  Nothing is cached: every example gets
fresh objects, so nothing leaks from one example to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ._models import build_model, loss, model_inputs, select_rows
from ._optimizers import build_optimizer
from ._plans import apply_plan, trainable_params, wrap_optimizers
from ._spec import Scenario

#: Rows of the global batch that each rank contributes.
ROWS_PER_RANK = 2


@dataclass
class Workload:
    """What a backend acts on: the user's module, what is trained, the optimizers.

    ``module`` is the model as the user wrote it (parameter FQNs come from it);
    ``model`` is what training runs (``module`` itself, or a wrapper such as
    DDP); backends that take "the model" as torch's APIs do receive ``model``.
    ``optimizers`` are over disjoint parameters; a backend gets and sets their
    state as one OSD (state keyed by FQN, param_groups concatenated in
    optimizer order), as ``torch.distributed.checkpoint.state_dict`` does.
    """

    scenario: Scenario
    module: nn.Module
    model: nn.Module
    optimizers: tuple[torch.optim.Optimizer, ...]
    device: torch.device
    rank: int
    schedulers: tuple = field(default=())

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The only optimizer (an error if the scenario has several)."""
        if len(self.optimizers) != 1:
            raise ValueError(
                f"this workload has {len(self.optimizers)} optimizers; use workload.optimizers"
            )
        return self.optimizers[0]


def build_workload(
    scenario: Scenario, *, rank: int, device: torch.device, init_seed: int | None = None
) -> Workload:
    """Build fresh objects for `scenario` on `rank`.

    ``init_seed`` seeds the parameter initialisation (default: the scenario's
    seed); pass another to build "fresh objects with a different seed".
    """
    torch.manual_seed(scenario.seed if init_seed is None else init_seed)
    module = build_model(scenario.model, device)
    model = apply_plan(scenario.plan, module, device, scenario.world_size)
    params = trainable_params(module)  # by the user's FQNs, whatever the plan wrapped
    optimizers = tuple(build_optimizer(spec, params) for spec in scenario.optimizers)
    optimizers = wrap_optimizers(scenario.plan, optimizers)  # ZeRO wraps each one
    return Workload(scenario, module, model, optimizers, device, rank)


def global_batch(scenario: Scenario, step: int, device: torch.device):
    """The whole batch of training step `step`, identical on every rank."""
    gen = torch.Generator().manual_seed(scenario.seed * 1_000_003 + step)
    return model_inputs(scenario.model, ROWS_PER_RANK * scenario.world_size, gen, device)


def local_batch(scenario: Scenario, step: int, rank: int, device: torch.device):
    """This rank's part of the batch: its slice under data parallelism, else all of it."""
    x = global_batch(scenario, step, device)
    if scenario.plan.data_parallel:
        start, stop = scenario.plan.batch_rows(rank, scenario.world_size, ROWS_PER_RANK * scenario.world_size)
        return select_rows(x, start, stop)
    return x


def train(workload: Workload, steps: int, *, first_step: int = 0) -> None:
    """Run `steps` optimizer steps on the rank's data (loss: `_models.loss`)."""
    sc = workload.scenario
    for step in range(first_step, first_step + steps):
        x = local_batch(sc, step, workload.rank, workload.device)
        for opt in workload.optimizers:
            opt.zero_grad(set_to_none=True)
        loss(workload.model(x)).backward()
        for opt in workload.optimizers:
            opt.step()
        for sched in workload.schedulers:
            sched.step()
