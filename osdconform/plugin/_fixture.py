"""The ``osd`` fixture's value: what a suite test calls to run a property.

`Conformance` holds the run's backend, world pool, expected failures and
scenario space; a suite test draws scenarios from it (`Conformance.scenarios`,
`Conformance.given`) and runs a property step on every rank with
`Conformance.check`, which judges the outcome against the expected failures,
counts it for the report and the progress line, and writes a reproducer when
an example fails.  `osdconform.plugin.conformance` builds it from the
options at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pytest

from ..backends import StateOptions
from ..expected_failures import XfailEntry, check_of, explained_problems, explaining, installed_torch
from ..harness import CPU_ONLY_ENV, RankHang, WorldFailure, WorldPool, active_pool
from ..harness._workdirs import CHECKPOINT_PREFIX
from ..scenario import PLAN_KINDS
from ..strategies import CORE, Space
from . import _profiles
from ._results import ItemRecord, example_features

HANG_RETRY_FACTOR = 4.0
#: Seconds; 5 s let examples of a world of 4 that shared 2 cores with another
#: xdist worker's world time out while merely waiting for a core.
HANG_RETRY_FLOOR = 20.0
#: A later example shows the test's first hang again (its ranks out, each in its
#: phase, every other rank done) for this long (at least; also 2x the slowest
#: pass) and fails then; the final replay Hypothesis reports waits longer.
HANG_REPEAT_SECONDS = 2.0
HANG_REPEAT_FINAL_SECONDS = 15.0


def _is_final_replay() -> bool:
    """Whether Hypothesis is replaying the example it will report (after shrinking)."""
    from hypothesis.control import current_build_context, currently_in_test_context

    return currently_in_test_context() and current_build_context().is_final


@dataclass
class Conformance:
    """The ``osd`` fixture: the backend under test, the world pool and expected failures."""

    backend_spec: str
    backend: Any
    world_sizes: tuple[int, ...]
    device: str
    timeout: float
    xfails: list[XfailEntry]
    #: The scenario space the run draws (``--osd-space``).
    space: Space = CORE
    repro_dir: str | None = None
    #: Where checkpoint directories are made (``--osd-checkpoint-dir``; None: the temp dir).
    checkpoint_dir: str | None = None
    _pool: WorldPool | None = None
    #: Pools on a device other than the run's (`pool_on`: the cross-device suite).
    _other_pools: dict[str, WorldPool] = field(default_factory=dict)
    _item: Any = None
    _hung: bool = False
    _hang_signature: Any = None  # the first hang of the current test (`_hang_repeat`)
    _slowest_pass: float = 0.0
    _record: ItemRecord = field(default_factory=ItemRecord)
    #: Where examples are counted for the progress line (None: no progress shown).
    progress: Any = None

    @property
    def name(self) -> str:
        return getattr(self.backend, "name", self.backend_spec)

    @property
    def capabilities(self):
        return self.backend.capabilities.on(self.device)

    @property
    def pool(self) -> WorldPool:
        if self._pool is None:
            # Under torchrun, rank 0 runs the examples on the scale-out world.
            self._pool = active_pool() or WorldPool(device=self.device, timeout=self.timeout)
        return self._pool

    def pool_on(self, device: str | None = None) -> WorldPool:
        """The pool whose worlds run on `device` (default: the run's, `pool`).

        Another device than the run's is for the cross-device suite (save
        in a world on one device, load in a world on the other); it needs a
        world of spawned ranks, so not under torchrun's scale-out world.  A
        CPU world there sees no GPU (`CPU_ONLY_ENV`): it stands for a machine
        without one.
        """
        if device is None or device == self.device:
            return self.pool
        if active_pool() is not None:
            pytest.skip(f"a world on {device} beside torchrun's world on {self.device}: run without torchrun")
        if device not in self._other_pools:
            env = CPU_ONLY_ENV if device == "cpu" else None
            self._other_pools[device] = WorldPool(device=device, timeout=self.timeout, env=env)
        return self._other_pools[device]

    def require(self, *, options: StateOptions | None = None, plan: str | None = None) -> None:
        """Skip the test as *unsupported* if the backend does not declare this combination."""
        reason = self.capabilities.unsupported(options=options, plan=plan)
        if reason:
            features = set(options.features()) if options is not None else set()
            if plan is not None:
                features.add(f"plan:{plan}")
            self._record.skipped_unsupported(features, reason)
            pytest.skip(f"unsupported by backend {self.name!r}: {reason}")

    def usable_world_sizes(self) -> tuple[int, ...]:
        sizes = tuple(
            w for w in self.world_sizes if self.capabilities.unsupported(world_size=w) is None
        )
        if not sizes:
            self._record.skipped_unsupported({f"world:{w}" for w in self.world_sizes}, "world sizes")
            pytest.skip(f"unsupported by backend {self.name!r}: none of world sizes {self.world_sizes}")
        return sizes

    def plans(self, options: StateOptions | None = None) -> list[str]:
        """The plan kinds of the run's space the backend can be drawn at (skip if none)."""
        drawable = self.space.drawable(self.capabilities, self.usable_world_sizes(), options)
        if drawable.plans:
            return list(drawable.plans)
        if all(self.capabilities.unsupported(options=options, plan=k) for k in PLAN_KINDS):
            features = set(options.features()) if options is not None else set()
            self._record.skipped_unsupported(features | {f"plan:{k}" for k in PLAN_KINDS}, "no plan")
            pytest.skip(f"unsupported by backend {self.name!r}: {drawable.why_none}")
        pytest.skip(drawable.why_none)

    def scenarios(self, options: StateOptions, **kw: Any):
        """Scenarios this backend can run in `options`' form: its world sizes, its plans
        (of the run's space), as many optimizers as it takes, and only what the
        form can represent.

        ``**kw`` go to `osdconform.strategies.Space.scenarios` (``min_steps``, ``schedulers``,
        ``device``: by default the run's, which decides the optimizer flags drawn).
        """
        from ..properties import representable

        kw.setdefault("device", self.device)
        drawn = self.space.scenarios(world_sizes=self.usable_world_sizes(), plan_kinds=self.plans(options), **kw)
        limit = self.capabilities.max_optimizers
        if limit is not None:
            drawn = drawn.filter(lambda sc: len(sc.optimizers) <= limit)
        return drawn.filter(representable(options))

    def given(self, *strategies: Any, **kw_strategies: Any) -> Callable[[Callable], Callable]:
        """`hypothesis.given`, and under a derandomized profile (``ci``) a seed of this test's own.

        Derandomized Hypothesis seeds a test from its function's source, and
        the inner ``check`` of each form of a parametrized suite test is the
        same function: every form would draw the same examples, and a ``ci``
        run would see a quarter of the scenarios it pays for.  The seed comes
        from the pytest node id, so each test draws its own sequence (the same
        one on every run, but for the constants Hypothesis takes from the local
        modules the process has loaded: see `_profiles`).
        """
        from hypothesis import given, seed, settings

        def decorate(test: Callable) -> Callable:
            wrapped = given(*strategies, **kw_strategies)(test)
            if settings.default.derandomize and self._item is not None:
                digest = hashlib.sha256(self._item.nodeid.encode()).digest()
                wrapped = seed(int.from_bytes(digest[:8], "big"))(wrapped)
            return wrapped

        return decorate

    @contextlib.contextmanager
    def directory(self):
        """A fresh, empty directory for one example's checkpoint, removed afterwards.

        Made under ``--osd-checkpoint-dir`` if given: every rank reads and
        writes the same path, so with several nodes it must be one they share.
        """
        # The driver's pid in the name: if it is killed, whoever runs next
        # (or the xdist controller at the end) removes what it left.
        path = tempfile.mkdtemp(prefix=f"{CHECKPOINT_PREFIX}p{os.getpid()}-", dir=self.checkpoint_dir)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def check(
        self,
        prop: str,
        fn: Callable[..., Any],
        scenario: Any,
        options: StateOptions,
        *extra: Any,
        timeout: float | None = None,
        fault: Any = None,
        device: str | None = None,
        source: Any = None,
        prior: tuple = (),
        lifecycle: tuple = (),
        inherited: Sequence[XfailEntry] = (),
    ) -> list[Any] | None:
        """Run property step `fn` on every rank for `scenario`; fail as the property fails.

        The task is ``fn(ctx, scenario, backend_spec, options, *extra)``;
        `timeout` caps the per-example timeout (for steps that should fail
        fast, such as loads that must raise); `fault` is the fault the
        example injects (``errors``), which expected-failure predicates see
        as ``fault`` (and the step's name as ``step``).  `device` runs the
        step in a world on that device instead of the run's (`pool_on`).  `source`: the
        scenario whose checkpoint the step loads when it is not `scenario` (a
        reshard's saving side), which predicates see as ``source``.  `prior`:
        ``(scenario, extra)`` of the steps this example ran before, in other worlds,
        whose results this one reads (a lifecycle's earlier world sizes): its
        reproducer runs them first.  `lifecycle`: a lifecycle's steps, which
        predicates see as ``lifecycle``; its entries explain a failure but a
        pass is no XPASS (a lifecycle may step past a defect without showing
        it).  `inherited`: entries of other properties that may explain the
        failure on the same terms (`osdconform.lifecycle._expected`).  An example covered by
        an expected-failures entry must fail as the entry says (it then
        returns None).  If it passes, that is an XPASS: it fails the test
        under the ``ci`` profile, and is reported at the end of the run
        (without failing) under the others.  Every example is counted per
        feature for the JSON report and the progress line.
        """
        from hypothesis import note

        note(f"scenario ({options.describe()}):\n{scenario.describe()}")
        note(f"as code: {scenario!r}")
        from . import _coverage

        _coverage.record(self._item, scenario)  # events, targets, --osd-coverage counts
        entries = [
            e for e in self.xfails
            if e.applies(prop, scenario, options, step=getattr(fn, "__name__", None), fault=fault, source=source,
                         lifecycle=lifecycle)
        ]
        explainers = entries + [e for e in inherited if e not in entries]
        if lifecycle:
            # A lifecycle may step past a defect without showing it (a wrong
            # checkpoint never loaded): its entries explain, they never XPASS.
            entries = []
        features = example_features(scenario, options)
        start = time.monotonic()
        try:
            limit = self._example_timeout()
            result = self.pool_on(device).run(
                scenario.world_size, fn, scenario, self.backend_spec, options, *extra,
                timeout=limit if timeout is None else min(limit, timeout),
                repeat=self._hang_repeat(),
            )
        except WorldFailure as failure:
            if isinstance(failure, RankHang):
                self._hung = True
                self._hang_signature = self._hang_signature or getattr(failure, "signature", None)
            explained = explaining(explainers, failure)  # every problem of the failure, or none
            for problem, entry in explained_problems(explainers, failure):
                self._record.checks[(prop, check_of(problem), "failed" if entry is None else "xfailed")] += 1
            self._count(prop, features, "xfailed" if explained else "failed", start, entries)
            if explained:
                for entry in explained:
                    self._record.xfailed[entry.describe()] += 1
                return None
            if not getattr(failure, "not_run", False):
                self._write_reproducer(prop, fn, scenario, options, failure, extra, device, prior)
            raise
        except Exception:
            self._count(prop, features, "failed", start, entries)
            raise
        self._slowest_pass = max(self._slowest_pass, time.monotonic() - start)
        if not entries:
            self._count(prop, features, "passed", start, entries)
            return result
        self._count(prop, features, "xpassed", start, entries)
        for entry in entries:
            self._record.xpassed[entry.describe()] += 1
        if _profiles.xpass_is_strict():
            hints = [e.fixed_hint(installed_torch()) for e in entries]
            raise AssertionError(
                "XPASS: this example passed though an expected failure covers it; "
                "remove or narrow the entry:\n"
                + "\n".join(e.describe() + (f"\n  {h}" if h else "") for e, h in zip(entries, hints))
            )
        return result

    def _count(self, prop: str, features, outcome: str, start: float, entries: list[XfailEntry]) -> None:
        self._record.example(prop, features, outcome, time.monotonic() - start, [e.describe() for e in entries])
        if self.progress is not None:
            self.progress.example(outcome)

    def _write_reproducer(
        self, prop, fn, scenario, options, failure, extra: tuple = (), device=None, prior: tuple = ()
    ) -> None:
        """Write this example's standalone reproducer (see `_repro`) and note its path.

        One file per test: each failing replay overwrites it, so the file ends
        up holding Hypothesis's final, shrunk example.  Never masks the failure.
        """
        from hypothesis import note

        if self.repro_dir is None or self._item is None:
            return
        from ..reporting import _repro

        try:
            path = _repro.write_script(
                self.repro_dir, self._item.nodeid, prop=prop, step=fn, scenario=scenario,
                backend_spec=self.backend_spec, options=options, extra=extra, device=device or self.device,
                failure=str(failure), timeout=self.timeout, prior=prior,
            )
        except Exception as exc:  # noqa: BLE001 (a reproducer is a courtesy)
            note(f"reproducer: not written ({exc!r})")
            return
        note(f"reproducer (no Hypothesis; exits 1 while this fails): python {path}")

    def _example_timeout(self) -> float:
        """The per-example timeout; shorter once an example of this test has hung.

        After a hang, Hypothesis replays and shrinks the hanging example, and
        each replay would wait the full timeout.  So the rest of the test waits
        `HANG_RETRY_FACTOR` times its slowest passing example (at least
        `HANG_RETRY_FLOOR` seconds, at most ``--osd-timeout``).  The final
        replay, the one Hypothesis reports, waits the full timeout: on a
        loaded machine a slow example can outlast the shorter wait, and only
        a hang that outlasts the full one is reported as a hang.
        """
        if not self._hung or _is_final_replay():
            return self.timeout
        return min(self.timeout, max(HANG_RETRY_FLOOR, HANG_RETRY_FACTOR * self._slowest_pass))

    def _hang_repeat(self) -> Any:
        """``(signature, seconds)`` of this test's first hang, to recognise a repeat of it
        (`harness.World.run`), or None before any hang.

        Shrinking a hang replays it dozens of times; each replay used to wait
        out `_example_timeout`.  A replay in which the same ranks sit in the
        same phases while every other rank has answered is that hang again:
        it fails after `HANG_REPEAT_SECONDS` (or twice the slowest passing
        example), the final replay after `HANG_REPEAT_FINAL_SECONDS` (or four
        times it).  A replay that hangs some other way still waits the timeout.
        """
        if self._hang_signature is None:
            return None
        if _is_final_replay():
            return self._hang_signature, max(HANG_REPEAT_FINAL_SECONDS, 4 * self._slowest_pass)
        return self._hang_signature, max(HANG_REPEAT_SECONDS, 2 * self._slowest_pass)

    def _start_item(self, item: Any) -> None:
        self._item = item
        self._hung = False
        self._hang_signature = None
        self._slowest_pass = 0.0
        self._record = ItemRecord()

    def _finish_item(self) -> None:
        # The test's numbers land in its teardown report, which xdist carries
        # to the controller (see _results.py).  Only conformance tests (those
        # using the `osd` fixture) are in the report.
        if self._item is not None and "osd" in getattr(self._item, "fixturenames", ()):
            self._record.attach(self._item)
        if self.progress is not None:
            self.progress.flush()
        self._start_item(None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for pool in self._other_pools.values():
            pool.close()
        self._other_pools.clear()
