"""Property 11, a save in flight: the optimizers step, or load an earlier checkpoint,
while an async save writes; the checkpoint must hold the state of the moment
the save began (``osdconform.properties.in_flight``).

Only for a backend that saves asynchronously (``storage+async_save``); one
test per thing the job does meanwhile.  Hypothesis draws the scenario.
"""

import pytest

from osdconform.properties import FORMS, IN_FLIGHT

OPTIONS = FORMS["storage+async_save"]


@pytest.mark.parametrize("busy", IN_FLIGHT)
def test_in_flight(osd, busy):
    osd.require(options=OPTIONS)

    @osd.given(osd.scenarios(OPTIONS))
    def check(scenario):
        with osd.directory() as directory:
            osd.check("in_flight", IN_FLIGHT[busy], scenario, OPTIONS, directory)

    check()
