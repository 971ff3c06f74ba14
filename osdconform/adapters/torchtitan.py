"""The ``torchtitan`` adapter: torchtitan's ``OptimizersContainer`` and its DCP ``CheckpointManager``.

What is under test.  torchtitan does not call torch's DSD for the optimizer:
its ``OptimizersContainer`` (one or more torch optimizers per model part)
has a ``state_dict()`` / ``load_state_dict()`` of its own
(``torchtitan/components/optimizer/utils.py``: ``init_optim_state``,
``get_flat_optim_state_dict``, ``load_flat_optim_state_dict``), an
independent implementation of what DSD does, and its ``CheckpointManager``
saves that through ``dcp.save`` / ``dcp.load``.  This adapter drives exactly
those methods and converts forms at the boundary only.

How the forms map.  The container's only form is flat and FQN-keyed,
``state.<fqn>.<name>`` and ``param_groups.<fqn>.<hyperparameter>``: torch's
flat format, the suite's ``flatten`` option (`StateOptions`), so a flat get
or set passes the container's dict as is.  The nested canonical OSD is
rebuilt from it with the live optimizers' group layout (the flat form does
not carry which parameters share a group) and flattened back for a set.  Its
values are what each rank holds: whole tensors under ``none`` / ``ddp`` (the
full form there), DTensor shards under the DTensor plans (the sharded form).
torchtitan has no in-memory full form under those plans (whole tensors only
come through DCP), so the full form is declared for ``none`` / ``ddp`` only
(``full_plans``); storage covers every plan, resharding included.

Building the container.  Its public constructor builds its own optimizers
from regex ``ParamGroupConfig`` s and knows only Adam, AdamW and DistMuon;
the suite draws the optimizer, so ``prepare`` adopts the suite's optimizers
into a container (the attributes ``__init__`` sets, then its ``_post_init``)
and keeps it in ``workload.framework``; ``workload.optimizers`` stay the
user's optimizers that the reference reads.  The container finds FQNs in a
``param_names`` entry of every param group (what torch records for an
optimizer built from ``(name, param)`` pairs, as torchtitan builds them); the
suite's optimizers are built from bare parameters and the golden twin has no
such key, so `_named` adds it (the user's FQNs) for the duration of each
container call and removes it after.  Training stays the suite's loop: the
container's ``step()`` is ``for opt in optimizers: opt.step()`` and refuses
closures (LBFGS).  Plans: the suite applies them (`apply_planned`) as
torchtitan does, with torch's ``fully_shard`` / ``parallelize_module``;
not ``fsdp1`` (flat parameters; torchtitan trains with FSDP2) nor ``zero``
(``ZeroRedundancyOptimizer.state_dict()`` needs a consolidation first).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from osdconform.backends import ALL_PLANS, Capabilities, StateOptions, Workload, apply_planned

INSTALL = "pip install 'osdconform[torchtitan]' (lean: README, Framework adapters, torchtitan)"
#: The step the checkpoint is saved as (``<directory>/step-1``); step 0 would load the model only.
STEP = 1


@dataclasses.dataclass(frozen=True)
class TitanCapabilities(Capabilities):
    """`Capabilities` plus ``full_plans``: the plans in which the in-memory full form exists."""

    full_plans: frozenset[str] = frozenset()

    def unsupported(self, options: StateOptions | None = None, plan: str | None = None,
                    world_size: int | None = None) -> str | None:
        reason = super().unsupported(options, plan, world_size)
        if reason is None and options is not None and options.full and not options.storage:
            if plan is not None and plan not in self.full_plans:
                return (f"no full form under plan {plan!r}: the container's state_dict() holds "
                        "this rank's DTensor shards (whole tensors only through storage)")
        return reason


@contextlib.contextmanager
def _named(workload: Workload):
    """Give every param group the ``param_names`` the container keys by, for one call.

    The user's FQNs (a tied parameter: its first name).  Removed afterwards
    from whatever groups the optimizers then hold (a load replaces them), so
    the reference and the golden twin see the suite's groups unchanged.
    """
    names: dict[int, str] = {}
    for name, param in workload.module.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), name)
    for opt in workload.optimizers:
        for group in opt.param_groups:
            group["param_names"] = [names[id(p)] for p in group["params"]]
    try:
        yield
    finally:
        for opt in workload.optimizers:
            for group in opt.param_groups:
                group.pop("param_names", None)


def _layout(workload: Workload) -> list[list[str]]:
    names: dict[int, str] = {}
    for name, param in workload.module.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), name)
    return [[names[id(p)] for p in g["params"]] for opt in workload.optimizers for g in opt.param_groups]


def flatten(osd: dict[str, Any]) -> dict[str, Any]:
    """The canonical nested OSD in the container's flat keys (an empty group has no key to carry it)."""
    flat: dict[str, Any] = {}

    def put(prefix: str, values: dict) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                put(f"{prefix}.{key}", value)
            else:
                flat[f"{prefix}.{key}"] = value

    for fqn, values in osd["state"].items():
        put(f"state.{fqn}", values)
    for group in osd["param_groups"]:
        for fqn in group["params"]:
            flat.update({f"param_groups.{fqn}.{k}": v for k, v in group.items() if k != "params"})
    return flat


def unflatten(flat: dict[str, Any], layout: list[list[str]]) -> dict[str, Any]:
    """The container's flat dict as the canonical nested OSD, groups as in `layout` (FQNs per group).

    FQNs contain dots, so each key is matched to the longest FQN it starts
    with; a group's hyperparameters are read from its first parameter, as the
    container's own load reads them.
    """
    fqns = sorted({f for group in layout for f in group}, key=len, reverse=True)
    state: dict[str, dict[str, Any]] = {}
    hparams: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, _, rest = key.partition(".")
        fqn = next((f for f in fqns if rest.startswith(f + ".")), None)
        if section not in ("state", "param_groups") or fqn is None:
            raise KeyError(f"flat key {key!r} names no parameter of the optimizers")
        path = rest[len(fqn) + 1:].split(".") if section == "state" else [rest[len(fqn) + 1:]]
        target = state.setdefault(fqn, {}) if section == "state" else hparams.setdefault(fqn, {})
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    groups = [{**(hparams.get(group[0], {}) if group else {}), "params": list(group)} for group in layout]
    return {"state": state, "param_groups": groups}


def _close(manager) -> None:
    """Close `manager` and the process group it made for async saves."""
    import torch.distributed as dist

    manager.close()
    if manager.pg is not None:
        dist.destroy_process_group(manager.pg)


class _SaveInFlight:
    """A ``CheckpointManager`` save not yet waited for (what `save_checkpoint` returns)."""

    def __init__(self, manager) -> None:
        self.manager = manager

    def result(self) -> None:
        try:
            self.manager.maybe_wait_for_saving()
        finally:
            _close(self.manager)


class TorchTitanBackend:
    """torchtitan's ``OptimizersContainer`` state dict in memory, its ``CheckpointManager`` through storage."""

    name = "torchtitan"
    requires = {"torchtitan": INSTALL}
    capabilities = TitanCapabilities(
        full=True,
        sharded=True,
        flatten=True,
        checkpoint=True,
        async_save=True,
        plans=ALL_PLANS - {"fsdp1", "zero", "pp"},  # pp: not triaged with torchtitan yet
        full_plans=frozenset({"none", "ddp"}),
    )

    def prepare(self, workload: Workload) -> Workload:
        """The suite's plan and optimizers, adopted by one ``OptimizersContainer`` (``workload.framework``)."""
        from torchtitan.components.optimizer import OptimizersContainer

        workload = apply_planned(workload)
        container = OptimizersContainer.__new__(OptimizersContainer)
        container.optimizers = list(workload.optimizers)
        container.model_parts = [workload.module]
        params = [p for opt in workload.optimizers for g in opt.param_groups for p in g["params"]]
        if params:  # Optimizer.__init__ (the container's hooks) refuses an empty list
            container._post_init(params)
        return dataclasses.replace(workload, framework=container)

    def get_optimizer_state(self, workload: Workload, options: StateOptions) -> dict[str, Any]:
        with _named(workload):
            flat = dict(workload.framework.state_dict())
        return flat if options.flatten else unflatten(flat, _layout(workload))

    def set_optimizer_state(self, workload: Workload, osd: dict[str, Any], options: StateOptions) -> None:
        flat = osd if options.flatten else flatten(osd)
        with _named(workload):
            workload.framework.load_state_dict(flat)

    def _manager(self, workload: Workload, directory: str, async_save: bool):
        from torchtitan.components.checkpoint import DATALOADER, LR_SCHEDULER, CheckpointManager

        config = CheckpointManager.Config(
            enable=True, folder=directory, interval=1, keep_latest_k=0,
            async_mode="async" if async_save else "disabled",
            initial_load_model_only=False,
            # No dataloader or LR scheduler here (the suite restores schedulers itself).
            exclude_from_loading=[DATALOADER, LR_SCHEDULER],
        )
        return CheckpointManager(
            config, dataloader=None, model_parts=[workload.module], optimizers=workload.framework,
            lr_schedulers=None, states={}, sd_adapter=None,
        )

    def save_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> Any:
        """``CheckpointManager.save`` (model and optimizer, as torchtitan saves them) to ``directory/step-1``.

        With ``async_save`` (torchtitan's ``async_mode="async"``) the save is
        returned in flight, as a training loop goes on after ``save``: its
        ``result()`` is the manager's ``maybe_wait_for_saving`` (the protocol).
        """
        manager = self._manager(workload, directory, options.async_save)
        try:
            with _named(workload):
                if not manager.save(curr_step=STEP):
                    raise RuntimeError(f"CheckpointManager.save wrote nothing under {directory}")
        except BaseException:
            _close(manager)
            raise
        pending = _SaveInFlight(manager)
        if not options.async_save:
            pending.result()
            return None
        return pending

    def load_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> None:
        """``CheckpointManager.load(step=1)``: ``dcp.load`` into the container's state dict, then its load."""
        manager = self._manager(workload, directory, async_save=False)
        try:
            with _named(workload):
                manager.load(step=STEP)
        finally:
            manager.close()
