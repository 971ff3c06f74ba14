"""Property 3, reshard: save at world size W1 with plan P1, load at W2 with P2 (W1 != W2).

In memory only the full OSD can cross worlds (a sharded one holds DTensors on
W1's mesh); through storage the checkpoint directory carries it.
"""

import pytest

from osdconform import properties
from osdconform import strategies as ost
from osdconform.properties import forms

FORMS = forms("full", "storage")


@pytest.mark.parametrize("form", FORMS)
def test_reshard(osd, form):
    options = FORMS[form]
    osd.require(options=options)
    sizes = osd.usable_world_sizes()
    if len(sizes) < 2:
        pytest.skip(f"needs two world sizes, got {list(sizes)}")

    @osd.given(
        ost.reshard_pairs(world_sizes=sizes, plan_kinds=osd.plans(options), space=osd.space, device=osd.device)
    )
    def check(pair):
        saved_at, loaded_at = pair
        with osd.directory() as directory:
            results = osd.check("reshard", properties.reshard_save, saved_at, options, directory)
            if results is None:  # an expected failure while saving
                return
            out = results[0]
            osd.check(
                "reshard", properties.reshard_load, loaded_at, options, directory,
                out["saved"], out["expected"], source=saved_at,
            )

    check()
