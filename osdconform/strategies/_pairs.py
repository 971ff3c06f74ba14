"""Strategies for properties that need two related scenarios (reshard)."""

from __future__ import annotations

from typing import Sequence

from hypothesis import assume
from hypothesis import strategies as st

from ..scenario import PlanSpec, Scenario, plan_accepts
from ..scenario._refusals import model_for_plan, without_grad_dtype
from ._space import CORE, Space


@st.composite
def reshard_pairs(
    draw,
    *,
    world_sizes: Sequence[int],
    plan_kinds: Sequence[str],
    min_steps: int = 1,
    space: Space = CORE,
    device: str = "cpu",
) -> tuple[Scenario, Scenario]:
    """(saved at W1 with P1, loaded at W2 with P2) of `space`: same model, optimizers, seed; W1 != W2.

    `device`: where the ranks train (optimizer flags are drawn for it).

    W2 shrinks toward the smallest other size, P2 toward the first kind given.
    """
    plan_kinds = [k for k in plan_kinds if k != "pp"]  # not yet: see `scenario._pipeline`
    first = draw(
        space.scenarios(world_sizes=world_sizes, plan_kinds=plan_kinds, min_steps=min_steps, device=device)
    )
    others = sorted(w for w in world_sizes if w != first.world_size)
    if not others:
        raise ValueError(f"resharding needs two world sizes, got {list(world_sizes)}")
    w2 = draw(st.sampled_from(others))
    kinds = [k for k in plan_kinds if plan_accepts(PlanSpec(k), w2) is None]
    # The loaded objects must be ones the space draws: every optimizer runs under P2 too
    # (no foreach beside TP's mixed DTensor and plain parameters, no LBFGS on sharded ones),
    # or the zero-gradient step of a load (torch-dsd's set, torch-dcp's template) fails.
    kinds = [k for k in kinds if not any(opt.unsupported_plan(k) for opt in first.optimizers)]
    kinds = space.plan_kinds(kinds)
    assume(kinds)
    # The target plan is drawn for the model with its parameters' own gradient
    # dtypes, and a plan that cannot train bfloat16 gradients loads into that
    # model (`model_for_plan`): so grad_dtype moved no draw of the pairs.
    plan = draw(space.plans(without_grad_dtype(first.model), kinds, seed=first.seed, salt="reshard"))
    model = model_for_plan(plan, w2, first.model)
    assume(plan_accepts(plan, w2, model) is None)
    return first, first.replace(world_size=w2, plan=plan, model=model)
