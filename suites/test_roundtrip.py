"""Property 1 (round trip) and property 2 (fidelity) of the contract.

Round trip: train, get the OSD, load it into fresh objects built with another
seed, get again: the two OSDs are equal (bitwise tensors, equal param_groups),
and the reference gather of the loaded optimizer equals that of the source.
Done for the full and the sharded OSD.

Fidelity: the backend's full OSD equals the reference gather of the ranks'
live local state.

Each test is one (plan, form) cell of the conformance matrix; Hypothesis
draws everything else (model, optimizer, groups, world size, steps).
"""

import pytest
from hypothesis import given

from osdconform import properties
from osdconform import strategies as ost
from osdconform.backends import StateOptions
from osdconform.scenario import PLAN_KINDS, PlanSpec, plan_accepts

FORMS = {"full": StateOptions(full=True), "sharded": StateOptions(full=False)}


def world_sizes_for(osd, plan: str) -> tuple[int, ...]:
    """The usable world sizes `plan` runs at; skip (with the plan's reason) if none."""
    sizes = osd.usable_world_sizes()
    fit = tuple(w for w in sizes if plan_accepts(PlanSpec(plan), w) is None)
    if not fit:
        pytest.skip(f"plan {plan!r} runs at none of world sizes {list(sizes)}: {plan_accepts(PlanSpec(plan), sizes[-1])}")
    return fit


@pytest.mark.parametrize("plan", PLAN_KINDS)
@pytest.mark.parametrize("form", FORMS)
def test_roundtrip(osd, plan, form):
    options = FORMS[form]
    osd.require(options=options, plan=plan)

    @given(ost.scenarios(world_sizes=world_sizes_for(osd, plan), plan_kinds=[plan]))
    def check(scenario):
        osd.check("roundtrip", properties.roundtrip, scenario, options)

    check()


@pytest.mark.parametrize("plan", PLAN_KINDS)
def test_fidelity(osd, plan):
    options = FORMS["full"]
    osd.require(options=options, plan=plan)
    if osd.name == "reference":
        pytest.skip(
            "not applicable: the reference backend is the oracle fidelity compares with; "
            "tests/ check the reference against torch's DTensor"
        )

    @given(ost.scenarios(world_sizes=world_sizes_for(osd, plan), plan_kinds=[plan]))
    def check(scenario):
        osd.check("fidelity", properties.fidelity, scenario, options)

    check()
