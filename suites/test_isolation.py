"""Property 7, isolation: a loaded optimizer does not alias the dict it was loaded from,
and (where the backend promises copies) a returned OSD does not alias the optimizer."""

import pytest

from osdconform import properties
from osdconform.properties import forms

FORMS = forms("full", "sharded")


@pytest.mark.parametrize("form", FORMS)
def test_isolation_after_set(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @osd.given(osd.scenarios(options, min_steps=1))
    def check(scenario):
        osd.check("isolation", properties.isolation_after_set, scenario, options)

    check()


def test_isolation_after_get(osd):
    options = FORMS["full"]
    osd.require(options=options)
    if not osd.capabilities.get_copies:
        pytest.skip(f"unsupported by backend {osd.name!r}: a full get does not promise copies (get_copies)")

    @osd.given(osd.scenarios(options, min_steps=1))
    def check(scenario):
        osd.check("isolation", properties.isolation_after_get, scenario, options)

    check()
