"""Cross-device: a storage checkpoint saved on CUDA and loaded on CPU, and back.

Runs only with ``--osd-device=cuda`` (on a machine with a GPU): the world on
the run's device saves or loads, a world of the same size on the CPU (gloo)
does the other half.  Everywhere else it is skipped with the reason, never
failed.  Only backends that write checkpoints (``checkpoint=True``: torch-dcp,
torch-save) run it; the others skip it as unsupported.  What is compared, and
why ``step`` may stay on the CPU: `osdconform.properties._devices`.
"""

import pytest

from osdconform import properties
from osdconform.properties import forms

NEEDS_CUDA = "needs a CUDA device: run with --osd-device=cuda on a GPU machine"
FORMS = forms("storage")
#: direction -> (the device of the world that saves, of the world that loads)
DIRECTIONS = {"cuda-to-cpu": ("cuda", "cpu"), "cpu-to-cuda": ("cpu", "cuda")}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("form", FORMS)
def test_cross_device(osd, form, direction):
    if osd.device != "cuda":
        pytest.skip(NEEDS_CUDA)
    options = FORMS[form]
    osd.require(options=options)
    saved_on, loaded_on = DIRECTIONS[direction]

    # Drawn for the saving device (its flags); the loading side runs the flags its device takes.
    @osd.given(osd.scenarios(options, device=saved_on))
    def check(scenario):
        with osd.directory() as directory:
            results = osd.check(
                "cross_device", properties.cross_device_save, scenario, options, directory, device=saved_on
            )
            if results is None:  # an expected failure while saving
                return
            osd.check(
                "cross_device", properties.cross_device_load, properties.scenario_on(scenario, loaded_on),
                options, directory, results[0]["expected"], device=loaded_on,
            )

    check()
