"""The steps of a checkpoint lifecycle, as plain data.

Why plain frozen dataclasses: a lifecycle is sent to every rank, printed in
failure output and written into reproducer scripts, so each step must pickle
and its ``repr`` must rebuild it (as `Scenario`'s does).  The state machine
(`_machine`) draws them; `_replay` runs them on the ranks, through the
backend and through the reference beside it.

A checkpoint is named by its number: the n-th `Save` of the lifecycle writes
checkpoint n.  Every load restores the model's parameters as they were at
that save too (by the reference, as users restore the model state with their
own checkpoint), so what is compared afterwards is the optimizer state the
backend restored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

from ..scenario import GroupSpec, PlanSpec, Scenario
from ..scenario._refusals import model_for_plan


@dataclass(frozen=True)
class Train:
    """Train `steps` more steps (on data no earlier step used)."""

    steps: int = 1


@dataclass(frozen=True)
class Save:
    """Checkpoint the live optimizers: the backend's get (in-memory forms) or save."""

    checkpoint: int


@dataclass(frozen=True)
class Load:
    """Load checkpoint `checkpoint` into the live objects (a second load, a rollback)."""

    checkpoint: int


@dataclass(frozen=True)
class Restart:
    """Build fresh objects (as a restarted job does) and load `checkpoint` into them."""

    checkpoint: int


@dataclass(frozen=True)
class Reshard:
    """Go on at another world size and/or plan: fresh objects there, `checkpoint` loaded."""

    checkpoint: int
    world_size: int
    plan: PlanSpec = PlanSpec()


@dataclass(frozen=True)
class NewWorld:
    """Restart the job in place: every process group destroyed and a new one made
    over the same ranks (`RankContext.restart_process_group`), fresh objects
    over it, `checkpoint` loaded.  What the old world held in memory goes
    through files, as it does between worlds: a restarted job keeps nothing
    built over the old groups."""

    checkpoint: int


@dataclass(frozen=True)
class GetSet:
    """In-memory forms: get the state and set it straight back (must change nothing)."""


@dataclass(frozen=True)
class StepSchedulers:
    """Step every LR scheduler once without an optimizer step (a per-epoch scheduler
    stepped at the end of an epoch, a warmup stepped ahead)."""


@dataclass(frozen=True)
class RebuildSchedulers:
    """Build the LR schedulers anew over the live optimizers, as a job does that
    makes its schedulers after loading the optimizers (they start from the
    groups' ``initial_lr``, which the optimizer's state dict carries)."""


@dataclass(frozen=True)
class Freeze:
    """Freeze the module or bare parameter `fqn` from the next training step on, as
    a job does that stops training part of its model (``requires_grad_(False)``
    before training step `after`, the steps trained so far: the scenario's
    ``freeze``, so a restarted job's script freezes it again at that step)."""

    fqn: str
    after: int


@dataclass(frozen=True)
class Unfreeze:
    """Train the module or bare parameter `fqn` again from the next training step
    on (``requires_grad_(True)``), a job's unfreezing of what a `Freeze` froze:
    its optimizer state is the one it had when it was frozen, and steps on
    from there.  The scenario forgets the freeze (a restarted job's script
    builds the part unfrozen)."""

    fqn: str


@dataclass(frozen=True)
class AddParamGroup:
    """``add_param_group(group)`` on optimizer number `optimizer` of the live
    objects: parameters that trained with no optimizer so far (a lifecycle
    starts without one of its optimizer's groups, `held_back`) join it, as a
    job adds the parameters of a part it starts to optimize mid-run.  The
    scenario's optimizer has the group last from here on (a restarted job's
    script builds it with the group, and the checkpoint has it)."""

    optimizer: int
    group: GroupSpec


Step = Union[
    Train, Save, Load, Restart, Reshard, NewWorld, GetSet, StepSchedulers, RebuildSchedulers, Freeze, Unfreeze,
    AddParamGroup,
]


def held_back(scenario: Scenario) -> list[tuple[Scenario, AddParamGroup]]:
    """Every way to start a lifecycle of `scenario` without one of its groups and
    add it later: ``(the scenario without it, the step that adds it)``.

    A group other than an optimizer's first, that leaves the optimizer a
    parameter (it must be built: ZeRO refuses one without, torch.optim one
    without a group), of an optimizer without an LR scheduler (a scheduler
    built before the group was added knows no base lr for it)."""
    out = []
    for o, opt in enumerate(scenario.optimizers):
        if opt.scheduler is not None:
            continue
        for g in range(1, len(opt.groups)):
            rest = dataclasses.replace(opt, groups=opt.groups[:g] + opt.groups[g + 1:])
            if not opt.groups[g].params or not any(group.params for group in rest.groups):
                continue
            optimizers = scenario.optimizers[:o] + (rest,) + scenario.optimizers[o + 1:]
            out.append((scenario.replace(optimizers=optimizers), AddParamGroup(o, opt.groups[g])))
    return out


def describe(step: Step) -> str:
    """One line for failure output: ``load checkpoint 0``."""
    if isinstance(step, Train):
        return f"train {step.steps} step(s)"
    if isinstance(step, Save):
        return f"save checkpoint {step.checkpoint}"
    if isinstance(step, Load):
        return f"load checkpoint {step.checkpoint} into the live objects"
    if isinstance(step, Restart):
        return f"restart: fresh objects, load checkpoint {step.checkpoint}"
    if isinstance(step, Reshard):
        return f"reshard: world {step.world_size}, plan {step.plan.describe()}, load checkpoint {step.checkpoint}"
    if isinstance(step, NewWorld):
        return f"new process-group world (same ranks): fresh objects, load checkpoint {step.checkpoint}"
    if isinstance(step, StepSchedulers):
        return "step the LR schedulers (no optimizer step)"
    if isinstance(step, RebuildSchedulers):
        return "build the LR schedulers anew over the live optimizers"
    if isinstance(step, Freeze):
        return f"freeze {step.fqn} from training step {step.after} on"
    if isinstance(step, Unfreeze):
        return f"unfreeze {step.fqn}: it trains again from the next step on"
    if isinstance(step, AddParamGroup):
        return f"add a param group to optimizer {step.optimizer}: {step.group.describe()}"
    return "get the state and set it back"


def scenario_after(scenario: Scenario, steps: tuple[Step, ...]) -> Scenario:
    """The scenario (world size, plan, freezes, param groups) the lifecycle runs under after `steps`."""
    for step in steps:
        if isinstance(step, Reshard):
            # A model with bfloat16 gradients goes on with its own dtype's under a plan
            # that cannot train those (`_refusals.model_for_plan`).
            model = model_for_plan(step.plan, step.world_size, scenario.model)
            scenario = scenario.replace(world_size=step.world_size, plan=step.plan, model=model)
        elif isinstance(step, Freeze):
            scenario = scenario.replace(model=scenario.model.with_frozen(step.fqn, step.after))
        elif isinstance(step, Unfreeze):
            scenario = scenario.replace(model=scenario.model.with_frozen(step.fqn, None))
        elif isinstance(step, AddParamGroup):
            opts = scenario.optimizers
            grown = dataclasses.replace(opts[step.optimizer], groups=opts[step.optimizer].groups + (step.group,))
            scenario = scenario.replace(optimizers=opts[: step.optimizer] + (grown,) + opts[step.optimizer + 1:])
    return scenario


def worlds(scenario: Scenario, steps: tuple[Step, ...]) -> list[tuple[Scenario, int, int]]:
    """Split `steps` into the runs of one world each: ``(scenario, first, stop)``,
    the run's scenario being the one its world starts under.

    A `Reshard` to another world size starts a new world (a task on a world
    pool of that size); one at the same size goes on in the same world.
    """
    runs = []
    first, at, current = 0, scenario, scenario
    for i, step in enumerate(steps):
        after = scenario_after(current, (step,))
        if isinstance(step, Reshard) and step.world_size != current.world_size:
            runs.append((at, first, i))
            first, at = i, after
        current = after
    runs.append((at, first, len(steps)))
    return runs
