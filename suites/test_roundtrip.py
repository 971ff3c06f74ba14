"""Property 1, round trip: get -> set into fresh objects -> get gives an equal OSD.

One test per option form (full, sharded, flatten, cpu_offload,
broadcast_from_rank0, through storage); Hypothesis draws everything else,
the plan included (among those the backend supports).
"""

import pytest

from osdconform import properties
from osdconform.properties import FORMS


@pytest.mark.parametrize("form", FORMS)
def test_roundtrip(osd, form):
    options = FORMS[form]
    osd.require(options=options)

    @osd.given(osd.scenarios(options))
    def check(scenario):
        with osd.directory() as directory:
            osd.check("roundtrip", properties.roundtrip, scenario, options, directory)

    check()
