"""Lifecycles drawn by Hypothesis: a ``RuleBasedStateMachine`` over one backend and form.

Why a state machine: one property checks one fixed script (train, save, load,
compare); the bugs that show only in a chain (a second load into the same
objects, a save after a load, a checkpoint of a checkpoint at a third world
size, a rollback to an older checkpoint) need the chain drawn, and shrunk to
the few steps that matter.  Each rule appends one step (`_rules`); Hypothesis
picks the rules, the checkpoints they load (a ``Bundle``: only ones saved
before), the world sizes and plans a reshard goes to.

The steps run at the end of each example (`teardown`), in one task per world
(`_replay.lifecycle`), which checks the live state against a shadow (the same
steps, checkpointed by the reference oracle) after *every* step: so the invariant holds after each rule, and the failure
names the first step that broke it.  Running them at the end, not rule by
rule, keeps a lifecycle one task per world (the ranks keep their objects
between steps, as a training job does) and gives it a reproducer script like
every other suite's (the worlds before the failing one run first).
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, note
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule

from ..scenario import PlanSpec, TreeSpec, plan_accepts
from ..scenario._refusals import model_for_plan, without_grad_dtype
from ._expected import inherited, scenario_at
from ._replay import lifecycle
from ._rules import (
    AddParamGroup,
    Freeze,
    GetSet,
    Load,
    NewWorld,
    RebuildSchedulers,
    Reshard,
    Restart,
    Save,
    StepSchedulers,
    Train,
    Unfreeze,
    describe,
    held_back,
    worlds,
)

#: Steps a lifecycle takes at most (Hypothesis's ``stateful_step_count``).
MAX_STEPS = 8


def lifecycle_machine(osd: Any, options: Any) -> type[RuleBasedStateMachine]:
    """The state machine of lifecycles of `osd`'s backend in `options`' form.

    `osd` is the suites' fixture (`osdconform.plugin.Conformance`): its
    scenarios, world sizes, plans and ``check`` (expected failures, reports and
    reproducers as in every suite).  Reshards are drawn where the form can
    carry state to another world size or plan (full and storage forms; a
    sharded OSD belongs to its plan), and so is a restart in a new process-group
    world (a sharded OSD's DTensors belong to the old one's meshes);
    get-and-set-back in the in-memory forms.
    """
    # Pipelines are not drawn in lifecycles yet (see `scenario._pipeline`).
    scenarios = osd.scenarios(options).filter(lambda scenario: scenario.plan.kind != "pp")
    world_sizes = osd.usable_world_sizes()
    kinds = [k for k in osd.plans(options) if k != "pp"]
    space = osd.space
    can_reshard = bool(options.storage or options.full)

    class Lifecycle(RuleBasedStateMachine):
        checkpoints = Bundle("checkpoints")

        @initialize(scenario=scenarios, data=st.data())
        def start(self, scenario, data) -> None:
            # Now and then one of its param groups is held back, for `add_param_group`.
            ways = held_back(scenario)
            way = data.draw(st.none() | st.sampled_from(ways), label="held back") if ways else None
            self.start_scenario, self.pending = way if way is not None else (scenario, None)
            self.steps: list = []

        def _now(self):
            """The scenario as it stands now: world, plan, freezes and steps trained so far."""
            return scenario_at(self.start_scenario, tuple(self.steps))

        def _loadable(self, checkpoint: int) -> bool:
            """Whether `checkpoint` has the param groups the optimizers have now: not
            one saved before a group was added (torch refuses a state dict with
            another number of groups; a job cannot roll back over the add)."""
            saved = next(i for i, s in enumerate(self.steps) if s == Save(checkpoint))
            return not any(isinstance(s, AddParamGroup) for s in self.steps[saved:])

        def _trained(self) -> int:
            return self._now().steps

        def _freezable(self) -> tuple:
            model = self._now().model
            return model.freezable_fqns() if isinstance(model, TreeSpec) and self._trained() else ()

        @rule(steps=st.integers(1, 2))
        def train(self, steps: int) -> None:
            self.steps.append(Train(steps))

        @rule(target=checkpoints)
        def save(self) -> int:
            checkpoint = sum(isinstance(s, Save) for s in self.steps)
            self.steps.append(Save(checkpoint))
            return checkpoint

        @rule(checkpoint=checkpoints)
        def load(self, checkpoint: int) -> None:
            assume(self._loadable(checkpoint))
            self.steps.append(Load(checkpoint))

        @rule(checkpoint=checkpoints)
        def restart(self, checkpoint: int) -> None:
            assume(self._loadable(checkpoint))
            self.steps.append(Restart(checkpoint))

        @precondition(lambda self: can_reshard)
        @rule(checkpoint=checkpoints, data=st.data())
        def reshard(self, checkpoint: int, data) -> None:
            assume(self._loadable(checkpoint))
            now = self._now()
            sizes = [w for w in world_sizes if any(plan_accepts(PlanSpec(k), w) is None for k in kinds)]
            world_size = data.draw(st.sampled_from(sizes), label="world size")
            # Only plans every optimizer runs under (as the reshard suite draws them).
            usable = [k for k in kinds if plan_accepts(PlanSpec(k), world_size) is None
                      and not any(o.unsupported_plan(k) for o in now.optimizers)]
            usable = space.plan_kinds(usable)
            assume(usable)
            # Drawn for the model with its own gradient dtypes, as before grad_dtype existed
            # (`_refusals.model_for_plan`: what goes on under the plan).
            model = without_grad_dtype(now.model)
            plan = data.draw(space.plans(model, usable, seed=now.seed, salt=f"lifecycle-{len(self.steps)}"),
                             label="plan")
            assume(plan_accepts(plan, world_size, model_for_plan(plan, world_size, now.model)) is None)
            self.steps.append(Reshard(checkpoint, world_size, plan))

        @precondition(lambda self: can_reshard)
        @rule(checkpoint=checkpoints)
        def new_world(self, checkpoint: int) -> None:
            assume(self._loadable(checkpoint))
            self.steps.append(NewWorld(checkpoint))

        @precondition(lambda self: bool(self._freezable()))
        @rule(data=st.data())
        def freeze(self, data) -> None:
            now, trained = self._now(), self._trained()
            fqn = data.draw(st.sampled_from(self._freezable()), label="freeze")
            model = now.model.with_frozen(fqn, trained)
            # Only what the plan can still train: the refusals see every step ahead.
            assume(plan_accepts(now.plan, now.world_size, model, trained + 2 * MAX_STEPS) is None)
            self.steps.append(Freeze(fqn, trained))

        def _unfreezable(self) -> tuple:
            model = self._now().model
            return model.unfreezable_fqns() if isinstance(model, TreeSpec) else ()

        @precondition(lambda self: bool(self._unfreezable()))
        @rule(data=st.data())
        def unfreeze(self, data) -> None:
            now, trained = self._now(), self._trained()
            fqn = data.draw(st.sampled_from(self._unfreezable()), label="unfreeze")
            model = now.model.with_frozen(fqn, None)
            assume(plan_accepts(now.plan, now.world_size, model, trained + 2 * MAX_STEPS) is None)
            self.steps.append(Unfreeze(fqn))

        @precondition(lambda self: getattr(self, "pending", None) is not None)
        @rule()
        def add_param_group(self) -> None:
            self.steps.append(self.pending)
            self.pending = None

        @precondition(lambda self: not options.storage)
        @rule()
        def get_set(self) -> None:
            self.steps.append(GetSet())

        @precondition(lambda self: any(o.scheduler for o in self.start_scenario.optimizers))
        @rule()
        def step_schedulers(self) -> None:
            self.steps.append(StepSchedulers())

        @precondition(lambda self: any(o.scheduler for o in self.start_scenario.optimizers))
        @rule()
        def rebuild_schedulers(self) -> None:
            self.steps.append(RebuildSchedulers())

        def teardown(self) -> None:
            if not getattr(self, "steps", None):
                return  # nothing beyond the start: every suite checks that much
            steps = tuple(self.steps)
            note("lifecycle:\n" + "\n".join(f"  {i}: {describe(s)}" for i, s in enumerate(steps)))
            note(f"as code: start={self.start_scenario!r}, steps={steps!r}")
            with osd.directory() as directory:
                prior: list = []
                for scenario, first, stop in worlds(self.start_scenario, steps):
                    extra = (directory, self.start_scenario, steps, first, stop)
                    known = inherited(osd.xfails, options, self.start_scenario, steps, first, stop)
                    if osd.check("lifecycle", lifecycle, scenario, options, *extra, prior=tuple(prior),
                                 lifecycle=steps, inherited=known) is None:
                        return  # an expected failure: the later worlds would load what it left
                    prior.append((scenario, extra))

    Lifecycle.__name__ = Lifecycle.__qualname__ = f"Lifecycle_{options.describe().replace('+', '_')}"
    return Lifecycle
