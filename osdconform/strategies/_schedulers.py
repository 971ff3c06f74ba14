"""Strategies for LR schedulers (see `osdconform.scenario._schedulers`).

A scheduler is optional (``None`` first, so it shrinks away); each kind's
arguments are left at the defaults of `SCHEDULER_KINDS` or drawn.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ..scenario import SCHEDULER_KINDS, SchedulerSpec

_ARGS = {
    "StepLR": {"gamma": st.sampled_from([0.5, 0.9])},
    "MultiStepLR": {"milestones": st.sampled_from([(2,), (1, 3)])},
    "ExponentialLR": {"gamma": st.sampled_from([0.5, 0.99])},
    "CosineAnnealingLR": {"eta_min": st.sampled_from([1e-4, 0.01])},
    "LinearLR": {"start_factor": st.sampled_from([0.5, 0.1]), "total_iters": st.sampled_from([2, 10])},
    "ConstantLR": {"factor": st.sampled_from([0.5, 0.1]), "total_iters": st.sampled_from([1, 2])},
    "PolynomialLR": {"power": st.sampled_from([2.0, 0.5]), "total_iters": st.sampled_from([2, 10])},
    "OneCycleLR": {"pct_start": st.sampled_from([0.1, 0.5]), "anneal_strategy": st.just("linear")},
    "CyclicLR": {"mode": st.sampled_from(["triangular2", "exp_range"])},
}


@st.composite
def scheduler_specs(draw) -> SchedulerSpec:
    kind = draw(st.sampled_from(list(SCHEDULER_KINDS)))
    chosen = []
    for name, values in _ARGS.get(kind, {}).items():
        if draw(st.booleans()):
            chosen.append((name, draw(values)))
    return SchedulerSpec(kind, tuple(chosen))


def schedulers() -> st.SearchStrategy[SchedulerSpec | None]:
    """No scheduler (the simplest), or one of any kind."""
    return st.none() | scheduler_specs()
