"""Property 9, errors are clear and atomic: a broken state is refused, by name, changing nothing.

A load that should raise but leaves a rank waiting is a hang; such examples
get at most `ERROR_TIMEOUT` seconds, so a backend that hangs fails quickly.
"""

import pytest
from hypothesis import strategies as st

from osdconform import properties
from osdconform.properties import IN_MEMORY_FAULTS, STORAGE_FAULTS, Fault, forms

ERROR_TIMEOUT = 30.0
FORMS = forms("full", "storage")


def faults(kinds):
    return st.builds(Fault, st.sampled_from(kinds), st.integers(0, 50))


@pytest.mark.parametrize("form", FORMS)
def test_errors(osd, form):
    options = FORMS[form]
    osd.require(options=options)
    kinds = STORAGE_FAULTS if options.storage else IN_MEMORY_FAULTS

    @osd.given(
        osd.scenarios(options, min_steps=1),
        faults(kinds),
    )
    def check(scenario, fault):
        with osd.directory() as directory:
            osd.check("errors", properties.errors, scenario, options, directory, fault,
                      timeout=ERROR_TIMEOUT, fault=fault)

    check()
