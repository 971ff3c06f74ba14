"""Build a scenario's objects on one rank, and train them.

Every rank calls `build_workload` with the same scenario and gets the same
model initialisation, the same param groups and the same data; the plan decides
how that model is split across ranks.  Nothing is cached: every example gets
fresh objects, so nothing leaks from one example to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._models import build_model
from ._plans import apply_plan
from ._spec import Scenario

#: Rows of the global batch that each rank contributes.
ROWS_PER_RANK = 2

_OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


@dataclass
class Workload:
    """What a backend acts on: the user's module, what is trained, the optimizer.

    ``module`` is the model as the user wrote it (parameter FQNs come from it);
    ``model`` is what training runs (``module`` itself, or a wrapper such as
    DDP); backends that take "the model" as torch's APIs do receive ``model``.
    """

    scenario: Scenario
    module: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    rank: int

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return (self.optimizer,)


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
    params = dict(module.named_parameters())
    groups = [
        {"params": [params[fqn] for fqn in g.params], **g.kwargs()}
        for g in scenario.optimizer.groups
    ]
    optimizer = _OPTIMIZERS[scenario.optimizer.name](groups)
    return Workload(scenario, module, model, optimizer, device, rank)


def global_batch(scenario: Scenario, step: int, device: torch.device) -> torch.Tensor:
    """The whole batch of training step `step`, identical on every rank."""
    gen = torch.Generator().manual_seed(scenario.seed * 1_000_003 + step)
    rows = ROWS_PER_RANK * scenario.world_size
    x = torch.randn(rows, scenario.model.dims[0], generator=gen)
    return x.to(device=device, dtype=getattr(torch, scenario.model.dtype))


def local_batch(scenario: Scenario, step: int, rank: int, device: torch.device) -> torch.Tensor:
    """This rank's part of the batch: its slice under data parallelism, else all of it."""
    x = global_batch(scenario, step, device)
    if scenario.plan.data_parallel:
        return x[rank * ROWS_PER_RANK : (rank + 1) * ROWS_PER_RANK]
    return x


def train(workload: Workload, steps: int, *, first_step: int = 0) -> None:
    """Run `steps` optimizer steps on the rank's data (loss: mean of squared outputs)."""
    sc = workload.scenario
    for step in range(first_step, first_step + steps):
        x = local_batch(sc, step, workload.rank, workload.device)
        workload.optimizer.zero_grad(set_to_none=True)
        workload.model(x).square().mean().backward()
        workload.optimizer.step()
