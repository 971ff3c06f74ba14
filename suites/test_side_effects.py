"""Property 8, no side effects: a get (or save) changes neither parameters nor optimizer state."""

import pytest

from osdconform import properties
from osdconform.properties import forms

FORMS = forms("full", "sharded", "storage")


@pytest.mark.parametrize("form", FORMS)
def test_side_effects(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @osd.given(osd.scenarios(options))
    def check(scenario):
        with osd.directory() as directory:
            osd.check("side_effects", properties.side_effects, scenario, options, directory)

    check()
