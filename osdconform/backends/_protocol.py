"""The backend protocol: what an adapter implements to be tested.

A backend gets and sets the optimizer state of a `Workload` (the user's module,
the trained model, the optimizer) on every rank of a live process group.  It
declares what it can do in `Capabilities`; the suites ask
`Capabilities.unsupported` before running and report an unsupported
combination as *unsupported* (a skip with that reason), never as passed.

A minimal third-party adapter::

    class MyCheckpointer:
        name = "mine"
        capabilities = Capabilities(full=True, sharded=False, plans=frozenset({"none", "ddp"}))

        def get_optimizer_state(self, workload, options):
            return my_lib.gather(workload.model, workload.optimizers)

        def set_optimizer_state(self, workload, osd, options):
            my_lib.load(workload.model, workload.optimizers, osd)

and ``pytest suites --osd-backend=my_pkg.adapter:MyCheckpointer``.  README's
"Writing an adapter" has two complete, tested adapters and the contract.
Every method is called on every rank at once; the suite puts a barrier
between a ``save_checkpoint`` and the ``load_checkpoint`` that follows.

A backend that writes checkpoints to storage (``torch-dcp``, ``torch-save``)
declares ``checkpoint=True`` and implements `CheckpointBackend`'s
``save_checkpoint`` / ``load_checkpoint``; the properties that cross a process
or world boundary (round trip through storage, reshard, resume, corrupted
files) then go through a real directory on disk.

A framework that owns more than the optimizer state (Accelerate's
``prepare``, DeepSpeed's engine, Lightning Fabric's ``setup``) implements two
optional methods, `Framework`'s: ``prepare`` wraps the user's module and
optimizers its own way (the suite then applies no plan of its own), and
``train`` runs the training steps through the framework.  The suite still
builds the scenario, trains the golden twin and judges with the reference
oracle; the adapter stays small.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..scenario import PLAN_KINDS, Workload


@dataclass(frozen=True)
class StateOptions:
    """How to get or set the OSD.  Mirrors the knobs of torch's ``StateDictOptions``.

    * ``full``: whole tensors (the canonical full OSD) vs this rank's shards;
    * ``flatten``: torch's flat key format (``state.<fqn>.<name>``);
    * ``cpu_offload``: full tensors on CPU (torch gives them to rank 0 only);
    * ``broadcast_from_rank0``: on set, only rank 0 passes the full OSD;
    * ``storage``: through ``save_checkpoint`` / ``load_checkpoint`` and a
      directory on disk instead of an in-memory get / set (``full`` is then
      the backend's business);
    * ``async_save``: with ``storage``, save asynchronously (`Checkpointer.save_checkpoint`
      may return the save in flight; the suite waits on it before any load).
    """

    full: bool = True
    flatten: bool = False
    cpu_offload: bool = False
    broadcast_from_rank0: bool = False
    async_save: bool = False
    storage: bool = False

    @property
    def form(self) -> str:
        """``storage``, ``full`` or ``sharded``: how the OSD travels."""
        return "storage" if self.storage else "full" if self.full else "sharded"

    @property
    def flags(self) -> tuple[str, ...]:
        """The knobs that are on, in `_OPTION_FLAGS` order."""
        return tuple(name for name in _OPTION_FLAGS if getattr(self, name))

    def describe(self) -> str:
        """E.g. ``full+flatten``, ``storage+async_save``: in test ids and messages."""
        return "+".join((self.form, *self.flags))

    def features(self) -> frozenset[str]:
        """The feature tags of these options in reports and ``--osd-coverage``
        (``form:storage``, ``option:async_save``, ...): the same facts as `describe`."""
        return frozenset({f"form:{self.form}", *(f"option:{name}" for name in self.flags)})


#: The boolean knobs of `StateOptions` a backend must declare to be given them.
_OPTION_FLAGS = ("flatten", "cpu_offload", "broadcast_from_rank0", "async_save")


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports.  Anything not declared is reported as unsupported.

    * ``full`` / ``sharded``: in-memory get/set of the full / this rank's OSD;
    * ``checkpoint``: ``save_checkpoint`` / ``load_checkpoint`` to a directory;
    * ``flatten``, ``cpu_offload``, ``broadcast_from_rank0``, ``async_save``:
      the `StateOptions` knobs it honours;
    * ``get_copies``: a full get returns tensors that do not alias the live
      optimizer (so stepping the optimizer leaves the returned dict alone);
    * ``plans``: the parallelism plans it works with; ``max_world_size``;
    * ``max_optimizers``: how many optimizers one workload may have (a
      framework that takes one optimizer says 1; the suite then draws no
      scenario with more; default: any);
    * ``gpu_plans``: plans it supports only on CUDA (``--osd-device=cuda``),
      reported on CPU as "needs a GPU" rather than left out silently.
    """

    full: bool = True
    sharded: bool = False
    checkpoint: bool = False
    flatten: bool = False
    cpu_offload: bool = False
    broadcast_from_rank0: bool = False
    async_save: bool = False
    get_copies: bool = False
    plans: frozenset[str] = field(default_factory=lambda: frozenset({"none"}))
    max_world_size: int | None = None
    max_optimizers: int | None = None
    gpu_plans: frozenset[str] = frozenset()

    #: Plans the installed torch cannot run on the device: ((kind, reason), ...); set by `on`.
    refused: tuple[tuple[str, str], ...] = ()

    def on(self, device: str, release: str | None = None) -> Capabilities:
        """These capabilities on `device` (``cpu`` or ``cuda``) with torch `release` (default: installed).

        ``gpu_plans`` count on CUDA only; plans that torch release cannot run
        there (`osdconform.scenario.release_refusals`) are refused with the
        release that can.
        """
        from ..scenario import release_refusals

        caps = self
        if device == "cuda" and self.gpu_plans:
            caps = dataclasses.replace(caps, plans=self.plans | self.gpu_plans)
        refused = {k: why for k, why in release_refusals(device, release).items() if k in caps.plans}
        return dataclasses.replace(caps, refused=tuple(sorted(refused.items()))) if refused else caps

    def unsupported(
        self,
        options: StateOptions | None = None,
        plan: str | None = None,
        world_size: int | None = None,
    ) -> str | None:
        """Why this combination is unsupported, or None if it is supported."""
        if options is not None and options.storage:
            if not self.checkpoint:
                return "no save/load to storage (checkpoint)"
        elif options is not None:
            if options.full and not self.full:
                return "no full optimizer state dict"
            if not options.full and not self.sharded:
                return "no sharded optimizer state dict"
        if options is not None:
            for name in _OPTION_FLAGS:
                if getattr(options, name) and not getattr(self, name):
                    return f"option {name} not supported"
        if plan is not None and plan in dict(self.refused):
            return dict(self.refused)[plan]
        if plan is not None and plan not in self.plans and plan in self.gpu_plans:
            return f"plan {plan!r} needs a GPU (--osd-device=cuda)"
        if plan is not None and plan not in self.plans:
            return f"plan {plan!r} not supported (supported: {sorted(self.plans)})"
        if world_size is not None and self.max_world_size is not None:
            if world_size > self.max_world_size:
                return f"world size {world_size} > {self.max_world_size}"
        return None


ALL_PLANS = frozenset(PLAN_KINDS)


@runtime_checkable
class Backend(Protocol):
    """The interface the suites drive.  Instantiated on every rank, once per example."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def get_optimizer_state(self, workload: Workload, options: StateOptions) -> dict[str, Any]:
        """Return the OSD of ``workload.optimizers`` in the canonical (or flat) form.

        Called on every rank at once (it may run collectives).  With
        ``options.full`` the result holds whole tensors keyed by FQN.
        """
        ...

    def set_optimizer_state(
        self, workload: Workload, osd: dict[str, Any], options: StateOptions
    ) -> None:
        """Load `osd` into ``workload.optimizers``.  Called on every rank at once.

        It must raise (on every rank, naming the offending key) rather than
        load an OSD that does not fit, and leave the optimizers as they were.
        """
        ...


@runtime_checkable
class CheckpointBackend(Backend, Protocol):
    """A backend that also saves to and loads from storage (``checkpoint=True``)."""

    def save_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> Any:
        """Write the optimizer state of `workload` under `directory` (same path on every rank).

        With ``options.async_save`` it may return the save still in flight:
        anything with a ``result()`` that waits for it and raises its error
        (the ``Future`` of ``dcp.async_save``).  Training goes on meanwhile
        (``suites/test_in_flight.py`` steps or loads the optimizers before
        waiting), and the checkpoint must hold the state as it was when
        `save_checkpoint` was called.  Returning None says the save is done.
        """
        ...

    def load_checkpoint(self, workload: Workload, directory: str, options: StateOptions) -> None:
        """Load what `save_checkpoint` wrote, possibly at another world size and plan.

        Every rank's save has returned before any rank loads (the suite runs a
        barrier between them), so a save may write on rank 0 only.  A
        truncated or corrupted file must raise an exception naming the file,
        on every rank, and leave the optimizers as they were.
        """
        ...


@runtime_checkable
class Framework(Protocol):
    """The optional methods of a backend that is a training framework.

    ``prepare`` is called on every rank right after the suite builds a
    workload: ``workload.model is workload.module`` (the user's module, on
    ``workload.device``, no plan applied) and ``workload.optimizers`` are plain
    ``torch.optim`` optimizers over its parameters.  It returns the workload
    every other method (and ``train``) gets, typically
    ``dataclasses.replace(workload, model=..., optimizers=..., framework=...)``.
    The drawn plan is ``workload.scenario.plan``: the adapter applies it its
    own way, calls `apply_planned` to have the suite apply it, or declares it
    unsupported.  The reference oracle keeps reading ``workload.module``'s
    parameters and ``workload.optimizers``' ``param_groups`` / ``state``, so
    those must stay keyed by the user's parameters (Accelerate's
    ``AcceleratedOptimizer`` does; a framework that replaces them hands over
    a view that does).

    ``train`` runs ``steps`` training steps from step ``first_step`` through
    the framework (its backward, its step); `step_loss` gives each step's
    loss on the suite's data.  Without it the suite's own loop steps
    ``workload.model`` and ``workload.optimizers`` (`default_train`).
    """

    def prepare(self, workload: Workload) -> Workload: ...

    def train(self, workload: Workload, steps: int, first_step: int) -> None: ...
