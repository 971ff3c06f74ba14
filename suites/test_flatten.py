"""Property 5, flatten: torch's flat key format, the inverse of unflatten, equal loads."""

import pytest

from osdconform import properties
from osdconform.properties import forms

FORMS = forms("full+flatten", "sharded+flatten")


@pytest.mark.parametrize("form", FORMS)
def test_flatten(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @osd.given(osd.scenarios(options))
    def check(scenario):
        osd.check("flatten", properties.flatten, scenario, options)

    check()
