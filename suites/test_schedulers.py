"""Property 10, schedulers and several optimizers round-trip with the optimizer state.

Resume with LR schedulers and several optimizers over disjoint parts of the
model: right after the load every group's lr and every scheduler's last lr
equal the source's, and m more steps equal the uninterrupted run.  Only
scenarios with a scheduler or several optimizers are drawn.
"""

import pytest
from hypothesis import strategies as st

from osdconform import properties
from osdconform.properties import forms

FORMS = forms("full", "sharded", "storage")


@pytest.mark.parametrize("form", FORMS)
def test_schedulers(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @osd.given(
        osd.scenarios(options, schedulers=True),
        st.integers(1, 2),
    )
    def check(scenario, more_steps):
        with osd.directory() as directory:
            osd.check("schedulers", properties.schedulers, scenario, options, directory, more_steps)

    check()
