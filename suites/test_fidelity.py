"""Property 2, fidelity: the backend's full OSD equals the reference gather of the live state."""

import pytest

from osdconform import properties
from osdconform.properties import forms

FORMS = forms("full", "full+flatten", "full+cpu_offload")


@pytest.mark.parametrize("form", FORMS)
def test_fidelity(osd, form):
    options = FORMS[form]
    osd.require(options=options)
    if osd.name == "reference":
        pytest.skip(
            "not applicable: the reference backend is the oracle fidelity compares with; "
            "tests/ check the reference against torch's DTensor"
        )

    @osd.given(osd.scenarios(options))
    def check(scenario):
        osd.check("fidelity", properties.fidelity, scenario, options)

    check()
