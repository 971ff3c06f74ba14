"""Property 6, type preservation: step, lr, state dtypes, DTensor-ness and placements survive a load."""

import pytest

from osdconform import properties
from osdconform.properties import forms

FORMS = forms("full", "sharded", "storage")


@pytest.mark.parametrize("form", FORMS)
def test_types(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @osd.given(osd.scenarios(options, min_steps=1))
    def check(scenario):
        with osd.directory() as directory:
            osd.check("types", properties.types, scenario, options, directory)

    check()
