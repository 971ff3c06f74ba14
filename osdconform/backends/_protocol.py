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
            return my_lib.gather(workload.model, workload.optimizer)

        def set_optimizer_state(self, workload, osd, options):
            my_lib.load(workload.model, workload.optimizer, osd)

and ``pytest suites --osd-backend=my_pkg.adapter:MyCheckpointer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..scenario import PLAN_KINDS, Workload


@dataclass(frozen=True)
class StateOptions:
    """How to get or set the OSD.  Mirrors the knobs of torch's ``StateDictOptions``.

    * ``full``: whole tensors (the canonical full OSD) vs this rank's shards;
    * ``flatten``: torch's flat key format (``state.<fqn>.<name>``);
    * ``cpu_offload``: full tensors on CPU (torch gives them to rank 0 only);
    * ``broadcast_from_rank0``: on set, only rank 0 passes the full OSD.
    """

    full: bool = True
    flatten: bool = False
    cpu_offload: bool = False
    broadcast_from_rank0: bool = False

    def describe(self) -> str:
        parts = ["full" if self.full else "sharded"]
        parts += [name for name in ("flatten", "cpu_offload", "broadcast_from_rank0") if getattr(self, name)]
        return "+".join(parts)


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports.  Anything not declared is reported as unsupported."""

    full: bool = True
    sharded: bool = False
    flatten: bool = False
    cpu_offload: bool = False
    broadcast_from_rank0: bool = False
    plans: frozenset[str] = field(default_factory=lambda: frozenset({"none"}))
    max_world_size: int | None = None

    def unsupported(
        self,
        options: StateOptions | None = None,
        plan: str | None = None,
        world_size: int | None = None,
    ) -> str | None:
        """Why this combination is unsupported, or None if it is supported."""
        if options is not None:
            if options.full and not self.full:
                return "no full optimizer state dict"
            if not options.full and not self.sharded:
                return "no sharded optimizer state dict"
            for name in ("flatten", "cpu_offload", "broadcast_from_rank0"):
                if getattr(options, name) and not getattr(self, name):
                    return f"option {name} not supported"
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
        """Return the OSD of ``workload.optimizer`` in the canonical (or flat) form.

        Called on every rank at once (it may run collectives).  With
        ``options.full`` the result holds whole tensors keyed by FQN.
        """
        ...

    def set_optimizer_state(
        self, workload: Workload, osd: dict[str, Any], options: StateOptions
    ) -> None:
        """Load `osd` into ``workload.optimizer``.  Called on every rank at once."""
        ...
