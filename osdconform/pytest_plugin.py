"""The pytest plugin (entry point ``pytest11``): options, the ``osd`` fixture, profiles.

Options:

* ``--osd-backend NAME|package.module:attr``: the backend under test (default ``reference``);
* ``--osd-world-sizes 1,2,3,4``: world sizes scenarios may use;
* ``--osd-device cpu|cuda``: gloo on CPU, or NCCL with one GPU per rank;
* ``--osd-xfails FILE``: expected failures (default: the file shipped for a built-in backend);
* ``--osd-timeout SECONDS``: per-example timeout before the world is torn down.

Bad values stop the run at start-up with one line (``pytest.UsageError``).
Hypothesis's ``--hypothesis-profile`` / ``--hypothesis-seed`` work as usual;
without a profile, ``dev`` is loaded (``ci`` when a CI variable is set).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from . import _profiles
from ._xfails import XfailEntry, XfailFileError, load_xfails, shipped_xfails
from .backends import BackendSpecError, StateOptions, resolve_backend
from .harness import RankHang, WorldFailure, WorldPool, device_kind

_profiles.register_profiles()

DEFAULT_WORLD_SIZES = (1, 2, 3, 4)
HANG_RETRY_FACTOR = 4.0
HANG_RETRY_FLOOR = 5.0
_XFAILED = "osd_xfailed"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("osdconform", "optimizer-state conformance")
    group.addoption("--osd-backend", default="reference", metavar="NAME",
                    help="backend under test: a built-in name or package.module:attr (default: reference)")
    group.addoption("--osd-world-sizes", default=",".join(map(str, DEFAULT_WORLD_SIZES)), metavar="LIST",
                    help="comma-separated world sizes scenarios may use (default: 1,2,3,4)")
    group.addoption("--osd-device", default="cpu", choices=["cpu", "cuda"],
                    help="cpu (gloo) or cuda (NCCL, one GPU per rank)")
    group.addoption("--osd-xfails", default=None, metavar="FILE",
                    help="expected-failures file (default: the one shipped for a built-in backend)")
    group.addoption("--osd-timeout", default=120.0, type=float, metavar="SECONDS",
                    help="per-example timeout; a world that exceeds it is torn down (default: 120)")


def _parse_world_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise pytest.UsageError(f"--osd-world-sizes: expected integers like 1,2,4, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise pytest.UsageError(f"--osd-world-sizes: sizes must be >= 1, got {text!r}")
    return tuple(sizes)


@dataclass
class Conformance:
    """The ``osd`` fixture: the backend under test, the world pool and expected failures."""

    backend_spec: str
    backend: Any
    world_sizes: tuple[int, ...]
    device: str
    timeout: float
    xfails: list[XfailEntry]
    _pool: WorldPool | None = None
    _item: Any = None
    _hung: bool = False
    _slowest_pass: float = 0.0
    _xfailed: Counter = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return getattr(self.backend, "name", self.backend_spec)

    @property
    def capabilities(self):
        return self.backend.capabilities

    @property
    def pool(self) -> WorldPool:
        if self._pool is None:
            self._pool = WorldPool(device=self.device, timeout=self.timeout)
        return self._pool

    def require(self, *, options: StateOptions | None = None, plan: str | None = None) -> None:
        """Skip the test as *unsupported* if the backend does not declare this combination."""
        reason = self.capabilities.unsupported(options=options, plan=plan)
        if reason:
            pytest.skip(f"unsupported by backend {self.name!r}: {reason}")

    def usable_world_sizes(self) -> tuple[int, ...]:
        sizes = tuple(
            w for w in self.world_sizes if self.capabilities.unsupported(world_size=w) is None
        )
        if not sizes:
            pytest.skip(f"unsupported by backend {self.name!r}: none of world sizes {self.world_sizes}")
        return sizes

    def check(
        self, prop: str, fn: Callable[..., Any], scenario: Any, options: StateOptions
    ) -> list[Any] | None:
        """Run property step `fn` on every rank for `scenario`; fail as the property fails.

        An example covered by an expected-failures entry must fail as the entry
        says (it then returns None); if it passes, that is an XPASS and fails.
        """
        from hypothesis import note

        note(f"scenario ({options.describe()}):\n{scenario.describe()}")
        note(f"as code: {scenario!r}")
        entries = [e for e in self.xfails if e.applies(prop, scenario, options)]
        start = time.monotonic()
        try:
            result = self.pool.run(
                scenario.world_size, fn, scenario, self.backend_spec, options,
                timeout=self._example_timeout(),
            )
        except WorldFailure as failure:
            if isinstance(failure, RankHang):
                self._hung = True
            for entry in entries:
                if entry.explains(failure):
                    self._record_xfail(entry)
                    return None
            raise
        self._slowest_pass = max(self._slowest_pass, time.monotonic() - start)
        if entries:
            raise AssertionError(
                "XPASS: this example passed though an expected failure covers it; "
                "remove or narrow the entry:\n" + "\n".join(e.describe() for e in entries)
            )
        return result

    def _example_timeout(self) -> float:
        """The per-example timeout; shorter once an example of this test has hung.

        After a hang, Hypothesis replays and shrinks the hanging example, and
        each replay would wait the full timeout.  So the rest of the test waits
        `HANG_RETRY_FACTOR` times its slowest passing example (at least
        `HANG_RETRY_FLOOR` seconds, at most ``--osd-timeout``).
        """
        if not self._hung:
            return self.timeout
        return min(self.timeout, max(HANG_RETRY_FLOOR, HANG_RETRY_FACTOR * self._slowest_pass))

    def _start_item(self, item: Any) -> None:
        self._item = item
        self._hung = False
        self._slowest_pass = 0.0
        self._xfailed = Counter()

    def _finish_item(self) -> None:
        # One property per entry (not per example): it lands in the teardown
        # report, which xdist carries to the controller, and in JUnit XML.
        if self._item is not None:
            for entry, n in sorted(self._xfailed.items()):
                self._item.user_properties.append((_XFAILED, (entry, n)))
        self._start_item(None)

    def _record_xfail(self, entry: XfailEntry) -> None:
        self._xfailed[entry.describe()] += 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


_CONFORMANCE = pytest.StashKey[Conformance]()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None) is None:
        from hypothesis import settings

        settings.load_profile(_profiles.profile_for_environment())
    spec = config.getoption("osd_backend")
    try:
        backend = resolve_backend(spec)
    except BackendSpecError as exc:
        raise pytest.UsageError(f"--osd-backend: {exc}") from None
    sizes = _parse_world_sizes(config.getoption("osd_world_sizes"))
    device = config.getoption("osd_device")
    try:
        device_kind(device).check(max(sizes))
    except RuntimeError as exc:
        raise pytest.UsageError(str(exc)) from None
    path = config.getoption("osd_xfails")
    try:
        xfails = load_xfails(path) if path else shipped_xfails(getattr(backend, "name", spec))
    except XfailFileError as exc:
        raise pytest.UsageError(f"--osd-xfails: {exc}") from None
    config.stash[_CONFORMANCE] = Conformance(
        backend_spec=spec,
        backend=backend,
        world_sizes=sizes,
        device=device,
        timeout=config.getoption("osd_timeout"),
        xfails=xfails,
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    conformance = config.stash.get(_CONFORMANCE, None)
    if conformance is not None:
        conformance.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    c = config.stash.get(_CONFORMANCE, None)
    if c is None:
        return []
    import torch

    from .scenario import OPTIMIZER_NAMES, unknown_optimizers

    unknown = unknown_optimizers()
    return [
        f"osdconform: backend {c.name} ({c.backend_spec}), world sizes {list(c.world_sizes)}, "
        f"device {c.device}, torch {torch.__version__}, {len(c.xfails)} expected-failure entries",
        f"osdconform: {len(OPTIMIZER_NAMES) - len(unknown)} optimizers of torch.optim covered"
        + (f"; NOT KNOWN to osdconform (drawn with torch's defaults, unsharded plans only): "
           f"{', '.join(unknown)}" if unknown else ""),
    ]


@pytest.fixture(scope="session")
def osd(pytestconfig: pytest.Config) -> Conformance:
    """The conformance session: backend under test, warm world pool, expected failures."""
    conformance = pytestconfig.stash[_CONFORMANCE]
    yield conformance
    conformance.close()


@pytest.fixture(autouse=True)
def _osd_current_item(request: pytest.FixtureRequest) -> None:
    conformance = request.config.stash.get(_CONFORMANCE, None)
    if conformance is not None:
        conformance._start_item(request.node)
    yield
    if conformance is not None:
        conformance._finish_item()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs on the xdist controller too, which is where the totals are shown.
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        if name == _XFAILED:
            entry, n = value
            _totals[entry] += n


#: Expected failures seen, by entry (filled from test reports, so from every
#: xdist worker on the controller).
_totals: Counter = Counter()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _totals:
        return
    terminalreporter.section("osdconform expected failures")
    for entry, n in sorted(_totals.items()):
        terminalreporter.write_line(f"{n:5d} example(s) failed as expected: {entry}")
