"""Property 4, resume: k steps, checkpoint, fresh objects, load, m steps == k+m steps."""

import pytest
from hypothesis import strategies as st

from osdconform import properties
from osdconform.properties import forms

FORMS = forms("full", "sharded", "storage")


@pytest.mark.parametrize("form", FORMS)
def test_resume(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @osd.given(
        osd.scenarios(options),
        st.integers(1, 2),
    )
    def check(scenario, more_steps):
        with osd.directory() as directory:
            osd.check("resume", properties.resume, scenario, options, directory, more_steps)

    check()
