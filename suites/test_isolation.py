"""Property 7, isolation: a loaded optimizer does not alias the dict it was loaded from,
and (where the backend promises copies) a returned OSD does not alias the optimizer."""

import pytest
from hypothesis import given

from osdconform import properties
from osdconform import strategies as ost
from osdconform.properties import forms, representable

FORMS = forms("full", "sharded")


@pytest.mark.parametrize("form", FORMS)
def test_isolation_after_set(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @given(ost.scenarios(world_sizes=osd.usable_world_sizes(), plan_kinds=osd.plans(options), min_steps=1).filter(representable(options)))
    def check(scenario):
        osd.check("isolation", properties.isolation_after_set, scenario, options)

    check()


def test_isolation_after_get(osd):
    options = FORMS["full"]
    osd.require(options=options)
    if not osd.capabilities.get_copies:
        pytest.skip(f"unsupported by backend {osd.name!r}: a full get does not promise copies (get_copies)")

    @given(ost.scenarios(world_sizes=osd.usable_world_sizes(), plan_kinds=osd.plans(options), min_steps=1).filter(representable(options)))
    def check(scenario):
        osd.check("isolation", properties.isolation_after_get, scenario, options)

    check()
