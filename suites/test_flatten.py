"""Property 5, flatten: torch's flat key format, the inverse of unflatten, equal loads."""

import pytest
from hypothesis import given

from osdconform import properties
from osdconform import strategies as ost
from osdconform.properties import forms, representable

FORMS = forms("full+flatten", "sharded+flatten")


@pytest.mark.parametrize("form", FORMS)
def test_flatten(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @given(ost.scenarios(world_sizes=osd.usable_world_sizes(), plan_kinds=osd.plans(options)).filter(representable(options)))
    def check(scenario):
        osd.check("flatten", properties.flatten, scenario, options)

    check()
