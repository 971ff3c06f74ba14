"""Scenario spaces as objects: what the suites draw, handed to whoever needs it.

A run draws from one space, ``full`` (the default: module trees, every
torch.optim optimizer, every plan) or ``core`` (MLPs, SGD/Adam/AdamW, plans
none/ddp/fsdp2: a quick first look); ``--osd-space`` picks it and the ``osd`` fixture holds
it (`Conformance.space`).  The space, not a module-level switch, answers the
questions every part of a run asks:

* which scenarios to draw (`Space.scenarios`, and the second plan of a
  reshard pair, `Space.plans`);
* which plan kinds and world sizes a backend can be drawn at (`Space.drawable`):
  the one answer the suites' skips and ``--osd-coverage``'s "values no example
  drew" both use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from hypothesis import strategies as st

from ..scenario import PLAN_KINDS, PlanSpec, plan_accepts
from ..scenario._catalogue import OPTIMIZER_NAMES
from ..scenario._plans import MIXED_PRECISION_PLANS, MIXED_PRECISION_TAG
from ..scenario._wrappers import WRAP_TAGS
from ._core import CORE_OPTIMIZERS, CORE_PLANS, FALLBACK_PLANS, core_plan_kinds, core_plans, core_scenarios
from ._models import DRAW_GRAD_DTYPE, GRAD_DTYPE
from ._plans import DRAW_MIXED_PRECISION, DRAW_WRAPPERS
from ._plans import plans as full_plans
from ._scenario import full_scenarios


@dataclass(frozen=True)
class Drawable:
    """The plan kinds and world sizes a space draws for one backend (in one form)."""

    plans: tuple[str, ...]
    world_sizes: tuple[int, ...]
    #: Why nothing can be drawn (``plans`` is then empty), else None.
    why_none: str | None = None


@dataclass(frozen=True)
class Space:
    name: str
    #: The optimizer classes the space draws.
    optimizers: tuple[str, ...]

    @property
    def is_core(self) -> bool:
        return self.name == "core"

    def plan_kinds(self, kinds: Sequence[str]) -> list[str]:
        """The kinds of `kinds` this space draws (core: its own plans, else the fallbacks)."""
        return core_plan_kinds(kinds) if self.is_core else list(kinds)

    def drawable(self, capabilities: Any, world_sizes: Sequence[int], options: Any = None) -> Drawable:
        """The plans and world sizes this space draws for a backend of `capabilities`.

        A plan is drawable if the backend supports it (in `options`' form) and
        it runs at one of the backend's `world_sizes`; a world size if some
        drawable plan runs at it.
        """
        sizes = [w for w in world_sizes if capabilities.unsupported(world_size=w) is None]
        if not sizes:
            return Drawable((), (), f"none of world sizes {list(world_sizes)}")
        kinds = [k for k in PLAN_KINDS if capabilities.unsupported(options=options, plan=k) is None]
        if not kinds:
            return Drawable((), tuple(sizes), f"none of the plans {list(PLAN_KINDS)}")
        runnable = [k for k in kinds if any(plan_accepts(PlanSpec(k), w) is None for w in sizes)]
        if not runnable:
            reasons = "; ".join(f"{k}: {plan_accepts(PlanSpec(k), sizes[-1])}" for k in kinds)
            return Drawable((), tuple(sizes), f"the backend's plans run at none of world sizes {sizes} ({reasons})")
        drawn = self.plan_kinds(runnable)
        if not drawn:
            return Drawable((), tuple(sizes), (
                f"none of the backend's plans {runnable} is in the core space "
                f"{list(CORE_PLANS + FALLBACK_PLANS)}; run with --osd-space=full"
            ))
        sizes = [w for w in sizes if any(plan_accepts(PlanSpec(k), w) is None for k in drawn)]
        return Drawable(tuple(drawn), tuple(sizes))

    def values(self, capabilities: Any, world_sizes: Sequence[int]) -> list[str]:
        """The optimizer, plan, world and (full space) model-wrapper, mixed-precision and
        gradient-dtype tags this space offers a backend: what a run can draw."""
        d = self.drawable(capabilities, world_sizes)
        full = not self.is_core and d.plans
        mixed = DRAW_MIXED_PRECISION and any(k in MIXED_PRECISION_PLANS for k in d.plans)
        return (
            [f"optimizer:{o}" for o in self.optimizers]
            + [f"plan:{k}" for k in d.plans]
            + [f"world:{w}" for w in d.world_sizes]
            + (list(WRAP_TAGS) if DRAW_WRAPPERS and full else [])
            + ([MIXED_PRECISION_TAG] if mixed and full else [])
            + ([f"grad dtype:{GRAD_DTYPE}"] if DRAW_GRAD_DTYPE and full and "none" in d.plans else [])
        )

    def scenarios(
        self,
        *,
        world_sizes: Sequence[int] = (1, 2, 3, 4),
        plan_kinds: Sequence[str] = PLAN_KINDS,
        schedulers: bool = False,
        **kw: Any,
    ) -> st.SearchStrategy:
        """Scenarios of this space.  ``schedulers=True``: only those with an LR
        scheduler or several optimizers (property 10)."""
        if self.is_core:
            return core_scenarios(world_sizes=world_sizes, plan_kinds=plan_kinds, schedulers=schedulers, **kw)
        drawn = full_scenarios(world_sizes=world_sizes, plan_kinds=plan_kinds, **kw)
        return drawn.filter(_has_schedulers_or_several_optimizers) if schedulers else drawn

    def plans(self, model: Any, kinds: Sequence[str], seed: int = 0, salt: str = "plan") -> st.SearchStrategy:
        """A plan of one of `kinds` for `model`, as this space draws plans (the
        full space wraps the model as `seed` and `salt` say: `_plans.wrapping_of_seed`)."""
        if self.is_core:
            return st.sampled_from(list(kinds)).flatmap(lambda kind: core_plans(kind, model))
        return full_plans(model, kinds=kinds, seed=seed, salt=salt)


def _has_schedulers_or_several_optimizers(scenario: Any) -> bool:
    return len(scenario.optimizers) > 1 or any(o.scheduler for o in scenario.optimizers)


CORE = Space("core", CORE_OPTIMIZERS)
FULL = Space("full", tuple(OPTIMIZER_NAMES))
SPACES = {space.name: space for space in (CORE, FULL)}


def space(name: str) -> Space:
    """The space called `name` (``core`` or ``full``)."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; known: {tuple(SPACES)}") from None


def scenarios(*, space: Space | str = CORE, **kw: Any) -> st.SearchStrategy:
    """Scenarios of `space` (the core one unless told; a run's ``osd.space`` is the full one
    by default); ``**kw`` as for `Space.scenarios`."""
    return (SPACES[space] if isinstance(space, str) else space).scenarios(**kw)
