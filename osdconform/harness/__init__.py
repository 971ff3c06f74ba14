"""The harness: warm worlds of rank processes that run property steps.

`WorldPool.run(size, fn, *args)` runs ``fn(ctx, *args)`` on every rank of a
live world of `size` and returns the values by rank, or raises:

* `PropertyViolation` (an ``AssertionError``): a rank's check failed;
* `RankError`: a rank raised anything else;
* `RankHang`: ranks did not answer within the timeout (world respawned);
* `RankCrash`: a rank died (world respawned);
* `WorldStartError`: a world could not be started.

`fn` must be picklable by reference (a module-level function); `ctx` is a
`RankContext`.  Device kinds (``cpu``/gloo, ``cuda``/NCCL) live in
``_devices.py``.

Under torchrun, `ScaleOutPool` (``_scaleout.py``) stands in for `WorldPool`:
the same ``run``/``close``, over the one world torchrun started (each rank's
side, `ScaleOutMember`, is in ``_member.py``).  Both kinds of world word their
failures and check their health after a rank raised with ``_failures.py``.
"""

from ._devices import CPU_ONLY_ENV, DEVICES, DeviceKind, device_kind
from ._errors import (
    HangSignature,
    PropertyViolation,
    RankCrash,
    RankError,
    RankHang,
    RankReport,
    WorldFailure,
    WorldStartError,
)
from ._pool import RankDiedBetweenExamples, WorldPool
from ._scaleout import ScaleOutMember, ScaleOutPool, active_pool, under_torchrun
from ._worker import RankContext
from ._world import World

__all__ = [
    "HangSignature",
    "CPU_ONLY_ENV",
    "DEVICES",
    "DeviceKind",
    "PropertyViolation",
    "RankContext",
    "RankCrash",
    "RankDiedBetweenExamples",
    "RankError",
    "RankHang",
    "RankReport",
    "ScaleOutMember",
    "ScaleOutPool",
    "World",
    "WorldFailure",
    "WorldPool",
    "WorldStartError",
    "active_pool",
    "device_kind",
    "under_torchrun",
]
