"""Build a scenario's objects on one rank, and train them.

Every rank calls `build_workload` with the same scenario and gets the same
model initialisation, the same param groups and the same data; the plan decides
how that model is split across ranks.  Nothing is cached: every example gets
fresh objects, so nothing leaks from one example to the next.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._apply import apply_plan, pipeline_schedule, trainable_params, wrap_optimizers
from ._models import apply_freezes, build_model, loss, model_inputs, select_rows
from ._optimizers import build_optimizer
from ._pipeline import restrict_optimizer, stage_param_fqns
from ._schedulers import build_scheduler
from ._spec import Scenario
from ._wrappers import wrap_model

#: Rows of the global batch that each rank contributes.
ROWS_PER_RANK = 2


@dataclass
class Workload:
    """What a backend acts on: the user's module, what is trained, the optimizers.

    ``module`` is the model as the user wrote it, with the activation
    checkpointing and ``torch.compile`` wrappers of ``plan.wrap`` (parameter
    FQNs come from it, the wrappers' name segments dropped: `_wrappers`);
    ``model`` is what training runs (``module`` itself, or a wrapper such as
    DDP); backends that take "the model" as torch's APIs do receive ``model``.
    ``optimizers`` are over disjoint parameters; a backend gets and sets their
    state as one OSD (state keyed by FQN, param_groups concatenated in
    optimizer order), as ``torch.distributed.checkpoint.state_dict`` does.
    Several-optimizer scenarios (LR-scheduler suite, ``full`` space) hand over
    two or more, so an adapter iterates ``optimizers``; ``optimizer`` is a
    shortcut for the one-optimizer case and raises otherwise, rather than
    let an adapter silently checkpoint only the first.
    ``framework`` is whatever a framework adapter's ``prepare`` keeps (an
    ``Accelerator``, a DeepSpeed engine); the suite never reads it.
    ``pipeline`` is the schedule that trains a pipeline stage (plan ``pp``:
    ``module`` and ``model`` are then the rank's stage, its optimizers the
    scenario's restricted to the stage's parameters, `_pipeline`), else None.
    """

    scenario: Scenario
    module: nn.Module
    model: nn.Module
    optimizers: tuple[torch.optim.Optimizer, ...]
    device: torch.device
    rank: int
    schedulers: tuple = field(default=())
    framework: Any = None
    pipeline: Any = None

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The only optimizer (an error if the scenario has several)."""
        if len(self.optimizers) != 1:
            raise ValueError(
                f"this workload has {len(self.optimizers)} optimizers; use workload.optimizers"
            )
        return self.optimizers[0]


def build_workload(
    scenario: Scenario, *, rank: int, device: torch.device, init_seed: int | None = None, planned: bool = True
) -> Workload:
    """Build fresh objects for `scenario` on `rank`.

    ``init_seed`` seeds the parameter initialisation (default: the scenario's
    seed); pass another to build "fresh objects with a different seed".
    ``planned=False`` leaves the plan unapplied (the user's module, plain
    optimizers) for a framework adapter's ``prepare`` (see `apply_planned`).
    """
    torch.manual_seed(scenario.seed if init_seed is None else init_seed)
    # The wrappers go on before the plan or a framework's prepare, as a
    # training script puts them on.
    module = wrap_model(scenario.plan.wrap, build_model(scenario.model, device))
    workload = Workload(scenario, module, module, (), device, rank)
    return apply_planned(workload) if planned else _with_optimizers(workload, wrap=False)


def apply_planned(workload: Workload) -> Workload:
    """`workload` with the suite's own wrapping of its plan, and optimizers built anew over it.

    `build_workload` does this; a framework adapter's ``prepare`` calls it for
    a plan it leaves to the suite.  The optimizers are rebuilt because some
    plans replace the parameters (FSDP1 flattens them): call it before any
    training step.
    """
    sc = workload.scenario
    model = apply_plan(sc.plan, workload.module, workload.device, sc.world_size)
    pipeline = pipeline_schedule(model, workload.device, sc.world_size) if sc.plan.kind == "pp" else None
    return _with_optimizers(dataclasses.replace(workload, model=model, pipeline=pipeline), wrap=True)


def rebuild_optimizers(workload: Workload) -> Workload:
    """`workload` with its optimizers (and LR schedulers) built anew over ``workload.module``'s parameters now.

    For a framework adapter whose wrapping replaces the parameters (FSDP2's
    ``fully_shard`` swaps each for a DTensor), so that optimizers built before
    it hold parameters the model no longer trains: such frameworks tell users
    to wrap the model first and create the optimizers after (Fabric's
    ``setup_module`` then ``setup_optimizers``).  Same specs, same FQNs; no
    plan-specific optimizer wrapping (ZeRO).  Call it before any training step.
    """
    return _with_optimizers(workload, wrap=False)


def _with_optimizers(workload: Workload, *, wrap: bool) -> Workload:
    sc = workload.scenario
    params = trainable_params(workload.module)  # by the user's FQNs, whatever the plan wrapped
    optimizers = tuple(build_optimizer(spec, params) for spec in optimizer_specs(workload))
    if wrap:
        optimizers = wrap_optimizers(sc.plan, optimizers)  # ZeRO wraps each one
    return dataclasses.replace(workload, optimizers=optimizers, schedulers=build_schedulers(sc, optimizers))


def optimizer_specs(workload: Workload) -> tuple:
    """The optimizer specs this rank builds: the scenario's, or under a pipeline
    (``workload.pipeline``) each restricted to the rank's stage (`_pipeline`)."""
    sc = workload.scenario
    if workload.pipeline is None:
        return sc.optimizers
    fqns = stage_param_fqns(sc.model, sc.world_size, workload.rank)
    return tuple(restrict_optimizer(spec, fqns) for spec in sc.optimizers)


def build_schedulers(scenario: Scenario, optimizers) -> tuple:
    """The LR schedulers `scenario`'s optimizer specs ask for, over `optimizers` (in spec order)."""
    return tuple(
        build_scheduler(spec.scheduler, opt)
        for spec, opt in zip(scenario.optimizers, optimizers)
        if spec.scheduler is not None
    )


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


def step_loss(workload: Workload, step: int) -> torch.Tensor:
    """The loss of training step `step` on this rank's data, for a framework's own loop.

    Freezes what the model freezes before `step`, then runs ``workload.model``
    on the rank's part of the batch.  When every parameter that step uses is
    frozen the loss does not require grad: skip the backward then, as `train`
    does.
    """
    apply_freezes(workload.module, workload.scenario.model, step)
    return loss(workload.model(local_batch(workload.scenario, step, workload.rank, workload.device)))


def _reshard(model: nn.Module) -> None:
    """Put FSDP-sharded parameters back after a forward that has no backward.

    FSDP2, and FSDP1 where it does not reshard after the forward (the root,
    ``SHARD_GRAD_OP``), reshard in the backward; when no parameter gets a
    gradient (all frozen or unused) there is none, and the module would keep
    its unsharded parameters, which are not the optimizer's (FSDP1 with
    ``use_orig_params`` leaves unsharded views in their place).  FSDP1 has no
    public ``reshard``: leaving ``summon_full_params`` reshards and puts the
    sharded parameters back (collective, as the forward was).
    """
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()
    if isinstance(model, FSDP):
        with FSDP.summon_full_params(model, writeback=False):
            pass


def train(workload: Workload, steps: int, *, first_step: int = 0) -> None:
    """Run `steps` optimizer steps on the rank's data (loss: `_models.loss`).

    Parameters the model freezes after ``k`` steps stop requiring grad before
    step ``k`` (counted from 0, so resuming at `first_step` agrees).
    Optimizers that need a closure (LBFGS) step after the others, with a
    closure that re-evaluates the loss (see `_closure`).
    """
    sc = workload.scenario
    for step in range(first_step, first_step + steps):
        apply_freezes(workload.module, sc.model, step)
        x = local_batch(sc, step, workload.rank, workload.device)
        for opt in workload.optimizers:
            opt.zero_grad(set_to_none=True)
        if workload.pipeline is not None:
            _pipeline_step(workload, x)
        else:
            out = loss(workload.model(x))
            if out.requires_grad:  # not when every used parameter is frozen
                out.backward()
            else:
                _reshard(workload.model)
        specs = sc.optimizers
        for spec, opt in zip(specs, workload.optimizers):
            if not spec.needs_closure:
                opt.step()
        for spec, opt in zip(specs, workload.optimizers):
            if spec.needs_closure:
                opt.step(_closure(workload, opt, x))
        for sched in workload.schedulers:
            sched.step()


def _pipeline_step(workload: Workload, x) -> None:
    """One forward and backward of the whole batch `x` through the pipeline.

    The first stage feeds the batch in (its features made to require grad,
    so that every stage's output does, even where all its parameters are
    frozen or unused: a stage's backward needs one); the last gets a target,
    which the loss ignores; the schedule cuts both into microbatches.
    """
    sc = workload.scenario
    stage, last = workload.rank, sc.world_size - 1
    args = (x[0].detach().requires_grad_(), x[1]) if stage == 0 else ()
    kwargs = {"target": torch.zeros(len(x[1]), device=workload.device)} if stage == last else {}
    workload.pipeline.step(*args, **kwargs)


def _closure(workload: Workload, opt: torch.optim.Optimizer, x):
    """A closure for `opt` that re-evaluates the loss on the batch `x`.

    Under data parallelism it returns the mean loss over all ranks (gradients
    are averaged already), so every rank's LBFGS takes the same decisions
    (its tolerance checks and line search read the loss) and runs the same
    number of forward/backward passes: the collectives line up, and the
    result equals a single process on the global batch.

    When no parameter gets a gradient (all unused or frozen) the loss does
    not require grad: there is nothing to backward, as in `train`, and every
    gradient stays None.  LBFGS reads None gradients as zeros
    (``_gather_flat_grad``), so it stops at its first-order check after this
    one evaluation, on every rank alike.
    """
    sc = workload.scenario

    def closure():
        opt.zero_grad(set_to_none=True)
        value = loss(workload.model(x))
        if value.requires_grad:
            value.backward()
        else:
            _reshard(workload.model)
        if sc.plan.data_parallel and sc.world_size > 1:
            import torch.distributed as dist

            parts = [torch.empty_like(value) for _ in range(sc.world_size)]
            dist.all_gather(parts, value.detach().contiguous())
            value = torch.stack(parts).sum() / sc.world_size  # same order on every rank
        return value

    return closure
