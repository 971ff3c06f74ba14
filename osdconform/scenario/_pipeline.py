"""Pipeline parallelism as plain data: how a model is cut into stages, and what each stage holds.

Under the ``pp`` plan (``torch.distributed.pipelining``) rank ``r`` of a
world of ``W`` is stage ``r``: it owns a contiguous run of the model's
top-level layers (`stage_bounds`, an even split, the first stages taking one
more when it does not divide) and nothing else.  The stage's module is the
user's module with the layers it does not own taken out, so its parameters
keep the user's FQNs (``layers.3.weight`` on stage 1 is ``layers.3.weight``),
as torchtitan's per-stage model parts do.  Ranks so hold *different* FQNs:
that is what the plan tests (flattened keys of one stage's state among
another's, pytorch/pytorch#126595; a load that expects every FQN on every
rank).

Each stage's optimizers are the scenario's restricted to the stage's
parameters (`restrict_optimizer`): the groups it has parameters in, in the
scenario's order, the others dropped (torch.optim keeps an empty group, but
DSD cannot key more than one: torchtitan likewise builds each part's
optimizer over that part's parameters only).  The canonical OSD of a stage
is the whole model's restricted the same way (`restrict_osd`), which is what
the golden twin is compared with on each rank.

Not drawn yet in reshard pairs and lifecycles: they compare what a rank
loads with what one rank saved, and a stage holds only its part; merging the
stages' parts (and cutting them for a pipeline that loads) is the next step.

Why plain data here and the torch side in `_apply`: strategies, refusals and
expected-failure predicates ask these questions without torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from ._models import AnyModelSpec, ModuleListSpec
from ._models._layout import _names
from ._optimizers import OptimizerSpec

#: Microbatches a training step is cut into (``n_microbatches`` of the schedule):
#: every global batch has ``ROWS_PER_RANK * W`` rows, which two always divide.
PP_MICROBATCHES = 2


def top_level_names(model: AnyModelSpec) -> list[str]:
    """The attribute names of the model's top-level layers in ``layers`` (``"0"``, ``"p1"``, ...)."""
    tree = model.tree()
    return _names(ModuleListSpec(tree.layers), tree.layers)


def stage_bounds(n_layers: int, stages: int, stage: int) -> tuple[int, int]:
    """The top-level layers ``[start, stop)`` that `stage` of `stages` owns (an even
    contiguous split; the first ``n_layers % stages`` stages take one more)."""
    base, extra = divmod(n_layers, stages)
    start = stage * base + min(stage, extra)
    return start, start + base + (1 if stage < extra else 0)


def stage_layer_names(model: AnyModelSpec, stages: int, stage: int) -> list[str]:
    names = top_level_names(model)
    start, stop = stage_bounds(len(names), stages, stage)
    return names[start:stop]


def stage_param_fqns(model: AnyModelSpec, stages: int, stage: int) -> frozenset[str]:
    """The canonical FQNs of the parameters `stage` owns (those under its top-level layers)."""
    prefixes = tuple(f"layers.{name}" for name in stage_layer_names(model, stages, stage))
    return frozenset(f for f in model.param_fqns() if f in prefixes or f.startswith(tuple(p + "." for p in prefixes)))


def restrict_optimizer(spec: OptimizerSpec, fqns: frozenset[str]) -> OptimizerSpec:
    """`spec` over the parameters of `fqns` only: groups cut to them, empty groups dropped."""
    groups = tuple(dataclasses.replace(g, params=tuple(f for f in g.params if f in fqns)) for g in spec.groups)
    return dataclasses.replace(spec, groups=tuple(g for g in groups if g.params))


def restrict_osd(osd: dict, fqns: frozenset[str]) -> dict:
    """A canonical OSD restricted to the parameters of `fqns`, as `restrict_optimizer` cuts groups."""
    groups = []
    for group in osd.get("param_groups", []):
        params = [f for f in group["params"] if f in fqns]
        if params:
            groups.append({**group, "params": params})
    out: dict[str, Any] = {k: v for k, v in osd.items() if k not in ("state", "param_groups")}
    out["state"] = {f: v for f, v in osd.get("state", {}).items() if f in fqns}
    out["param_groups"] = groups
    return out


def stage_views(scenario: Any) -> tuple:
    """`scenario` as each stage's rank runs it: its optimizers restricted to the
    stage's parameters (`restrict_optimizer`), everything else unchanged.

    A backend under a pipeline sees only its stage's optimizers, so a defect
    holds for the pipeline where it holds for some stage: expected-failure
    predicates are judged on these views (`XfailEntry.applies`).
    """
    n = scenario.world_size
    return tuple(
        scenario.replace(
            optimizers=tuple(restrict_optimizer(o, stage_param_fqns(scenario.model, n, r)) for o in scenario.optimizers)
        )
        for r in range(n)
    )


#: Forms a pipeline's state cannot travel in: torch's rank-0 options hand the
#: whole state to (or take it from) rank 0 alone, and under a pipeline rank 0
#: holds only the first stage's part (`representable`).
RANK0_OPTIONS = ("cpu_offload", "broadcast_from_rank0")


def pipeline_refusal(model: AnyModelSpec, world_size: int, optimizers: Sequence[OptimizerSpec]) -> str | None:
    """Why `optimizers` cannot run under ``pp`` at `world_size`, or None.

    Every stage must hold a parameter of every optimizer: torch.optim refuses
    an optimizer without parameters, and a stage that dropped one would hand
    the backend another list of optimizers than its peers (and than the
    scenario's LR schedulers, one per optimizer spec).
    """
    for stage in range(world_size):
        fqns = stage_param_fqns(model, world_size, stage)
        for i, spec in enumerate(optimizers):
            if not fqns.intersection(spec.param_fqns()):
                return f"stage {stage} holds no parameter of optimizer {i} ({spec.name})"
    return None
