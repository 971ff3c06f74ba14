"""The conditions of the grad-dtype entries (`_conditions_grad_dtype`), against the twin and torch.

Models whose float32 / float64 parameters take bfloat16 gradients
(`TreeSpec.grad_dtype`) meet two torch defects, and each entry says from the
specs alone when: which state an optimizer keeps in the gradient's dtype (so
that a load casts it: the golden twin trains the scenario and shows it), and
when torch-dsd's zero-gradient step runs and fails (a real get, and a set into
fresh objects, in a world of one).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings

from helpers import predicate_tasks as pt
from osdconform import strategies as ost
from osdconform.expected_failures._conditions_grad_dtype import (
    dsd_get_primes_grad_dtype,
    dsd_set_primes_grad_dtype,
    gradient_dtype_state,
)
from osdconform.golden import golden_full_osd
from osdconform.harness import WorldPool

GRAD_DTYPE_ERROR = "attempting to assign a gradient with dtype"

#: Examples of one rank without a plan, the only ones given a gradient dtype.
WITH_GRAD_DTYPE = ost.full_scenarios(plan_kinds=("none",), world_sizes=(1,)).filter(
    lambda s: s.model.grad_dtype is not None
)
SETTINGS = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=60) as pool:
        yield pool


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


@SETTINGS
@given(WITH_GRAD_DTYPE)
def test_gradient_dtype_state_names_the_state_the_twin_keeps_in_the_gradients_dtype(scenario):
    dtypes = scenario.model.param_dtypes()
    kept = {
        fqn
        for fqn, state in golden_full_osd(scenario)["state"].items()
        if dtypes[fqn] != "bfloat16"
        and any(t.dtype == torch.bfloat16 for key, v in state.items() if key != "step" for t in _tensors(v))
    }
    event(f"state in the gradient's dtype: {bool(kept)}")
    assert kept == set(gradient_dtype_state(scenario))


@SETTINGS
@given(WITH_GRAD_DTYPE)
def test_the_priming_conditions_say_when_torch_dsds_zero_gradient_step_fails(pool, scenario):
    get_error, set_error = pool.run(1, pt.dsd_set_error, scenario)[0]
    primed_get = get_error is not None and GRAD_DTYPE_ERROR in get_error
    event(f"get fails by the gradient dtype: {primed_get}")
    assert primed_get == dsd_get_primes_grad_dtype(scenario), get_error
    if get_error is not None:
        return
    primed_set = set_error is not None and GRAD_DTYPE_ERROR in set_error
    if set_error is not None and not primed_set:
        event("another defect stopped the set (recorded elsewhere)")
        return
    event(f"set fails by the gradient dtype: {primed_set}")
    assert primed_set == dsd_set_primes_grad_dtype(scenario), set_error
