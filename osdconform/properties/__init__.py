"""Property steps: what the suites run on every rank of a world.

One module per property of the contract (the numbers are SPEC.md's); each
function is a `WorldPool.run` task ``fn(ctx, scenario, backend_spec, options, *extra)``
that raises an AssertionError (usually `OSDMismatch`) where the property fails.
Shared steps (build, train, get/save, set/load, compare) are in `_steps`.

1. `roundtrip`            5. `flatten`
2. `fidelity`             6. `types`
3. `reshard_save` / `reshard_load`   7. `isolation_after_set`, `isolation_after_get`
4. `resume` (10: with schedulers and several optimizers)   8. `side_effects`
9. `errors` with a `Fault`          11. `in_flight_training`, `in_flight_loading`

Beside them, `cross_device_save` / `cross_device_load`: a storage checkpoint
saved on one device and loaded on the other (``suites/test_devices.py``; CUDA only).
"""

from ._devices import cross_device_load, cross_device_save, placed, scenario_on
from ._errors import IN_MEMORY_FAULTS, STORAGE_FAULTS, Fault, errors
from ._fidelity import fidelity
from ._flatten import flatten
from ._forms import FORMS, forms, representable
from ._in_flight import IN_FLIGHT, in_flight_loading, in_flight_training
from ._isolation import isolation_after_get, isolation_after_set
from ._reshard import reshard_load, reshard_save
from ._resume import resume, schedulers
from ._roundtrip import roundtrip
from ._side_effects import side_effects
from ._steps import FRESH_SEED_OFFSET
from ._types import types

__all__ = [
    "FORMS",
    "FRESH_SEED_OFFSET",
    "IN_FLIGHT",
    "IN_MEMORY_FAULTS",
    "STORAGE_FAULTS",
    "Fault",
    "cross_device_load",
    "cross_device_save",
    "errors",
    "fidelity",
    "flatten",
    "in_flight_loading",
    "in_flight_training",
    "forms",
    "isolation_after_get",
    "isolation_after_set",
    "placed",
    "reshard_load",
    "reshard_save",
    "representable",
    "resume",
    "roundtrip",
    "scenario_on",
    "schedulers",
    "side_effects",
    "types",
]
