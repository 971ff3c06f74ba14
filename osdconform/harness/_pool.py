"""The world pool: one warm world per size, per driver process.

Spawning a world costs seconds; a warm world runs a small task in
milliseconds.  The pool therefore spawns each world size once (lazily, on
first use) and reuses it for every later example and test of the driver
process.  Under ``pytest -n auto`` each xdist worker is a driver with its own
pool; ports come from the OS and files from ``mkdtemp``, so workers never
collide.

A world that hung or lost a rank is closed by `World.run`; the pool notices
and spawns a fresh one on next use.  A world whose ranks all answered but some
raised is checked with a barrier before it is trusted again.
"""

from __future__ import annotations

import atexit
import threading
import warnings
import weakref
from typing import Any, Callable

from ._devices import device_kind
from ._errors import RankError
from ._failures import health_barrier
from ._workdirs import sweep_stale_workdirs
from ._world import World

_LIVE_POOLS: "weakref.WeakSet[WorldPool]" = weakref.WeakSet()


class RankDiedBetweenExamples(UserWarning):
    """A rank process died after its last example had passed; the world was respawned."""


class WorldPool:
    """Warm worlds keyed by size.  Use as a context manager, or call `close`."""

    def __init__(
        self,
        *,
        device: str = "cpu",
        timeout: float = 60.0,
        startup_timeout: float = 120.0,
        health_timeout: float = 15.0,
        env: dict[str, str] | None = None,
    ) -> None:
        """`env`: environment variables every rank sets at start (e.g. `CPU_ONLY_ENV`)."""
        self.device = device
        self.env = dict(env or {})
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.health_timeout = health_timeout
        self._kind = device_kind(device)
        self._worlds: dict[int, World] = {}
        self._lock = threading.Lock()
        self.spawned = 0  # worlds started, for tests and benchmarks
        sweep_stale_workdirs()
        _LIVE_POOLS.add(self)

    def world(self, size: int) -> World:
        """The live world of `size`, spawned if there is none."""
        world = self._worlds.get(size)
        if world is not None and not world.healthy():
            if not world.closed:
                # A rank died after answering its last task: no example owns
                # that death, so say so (a warning in the test summary) and
                # start afresh rather than fail whichever example comes next.
                warnings.warn(RankDiedBetweenExamples(world.death_report()), stacklevel=2)
            world.close(graceful=False)
            world = None
        if world is None:
            self._kind.check(size)
            world = World(size, device=self.device, startup_timeout=self.startup_timeout, env=self.env)
            self._worlds[size] = world
            self.spawned += 1
        return world

    def run(
        self,
        size: int,
        fn: Callable[..., Any],
        *args: Any,
        timeout: float | None = None,
        repeat: Any = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Run ``fn(ctx, *args, **kwargs)`` on every rank of the world of `size`.

        `repeat`: ``(HangSignature, seconds)``, a hang to recognise early (`World.run`)."""
        with self._lock:
            world = self.world(size)
            try:
                return world.run(fn, args, kwargs, timeout=timeout or self.timeout, repeat=repeat)
            except RankError:
                self._check_health(world)
                raise

    def _check_health(self, world: World) -> None:
        if world.closed:
            return
        try:
            world.run(health_barrier, timeout=self.health_timeout)
        except Exception:
            world.close(graceful=False)

    def close(self) -> None:
        with self._lock:
            for world in self._worlds.values():
                world.close()
            self._worlds.clear()

    def __enter__(self) -> "WorldPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@atexit.register
def _close_all_pools() -> None:
    # The last line of defence for a driver that exits without closing its
    # pools (ranks also die with their driver: see `_worker.die_with_driver`).
    for pool in list(_LIVE_POOLS):
        pool.close()
