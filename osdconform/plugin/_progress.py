"""A progress line for long runs: examples done, examples per second, failures so far.

A nightly test runs hundreds of examples and can take many minutes, during
which pytest itself shows nothing.  So:

* on a terminal (TTY), a live line is kept at the end of pytest's current
  line (after the dots) and redrawn at most every `LIVE_INTERVAL` seconds; it
  is erased before pytest writes anything, so pytest's own output is unchanged;
* in a log (not a TTY), one plain line at most every `LOG_INTERVAL` seconds
  (none at all in a run shorter than that);
* under ``-q`` (or ``--osd-progress=off``), nothing.

Under pytest-xdist the examples run in the workers, whose output nobody sees,
and the controller hears from a worker only when a whole test ends.  So each
worker writes its running counts to a small file (at most once a second) in a
directory the controller creates and hands to the workers, and the controller
sums the files from a background thread and draws one line for the whole run.
A lock keeps that thread from drawing while pytest writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import pytest

from ._config import PROGRESS_MODES, value

LIVE_INTERVAL = 0.5
LOG_INTERVAL = 30.0
WORKER_WRITE_INTERVAL = 1.0
WORKERINPUT_KEY = "osd_progress_dir"
MODES = PROGRESS_MODES


@dataclass
class Counts:
    """Examples run so far, and how many failed (shrinking attempts included) or failed as expected."""

    examples: int = 0
    failed: int = 0
    xfailed: int = 0

    def add(self, outcome: str) -> None:
        self.examples += 1
        if outcome == "failed":
            self.failed += 1
        elif outcome == "xfailed":
            self.xfailed += 1


def progress_text(counts: Counts, failed_tests: int, elapsed: float) -> str:
    rate = counts.examples / elapsed if elapsed > 0 else 0.0
    text = f"osdconform: {counts.examples} examples, {rate:.1f}/s, failures: {failed_tests} tests, {counts.failed} examples"
    if counts.xfailed:
        text += f", {counts.xfailed} xfailed"
    return text


class ProgressLine:
    """Draws the progress text on a pytest terminal, live (TTY) or as a periodic log line."""

    def __init__(
        self,
        terminalreporter: Any,
        mode: str,
        capture_manager: Any = None,
        clock: Callable[[], float] = time.monotonic,
        log_interval: float = LOG_INTERVAL,
    ) -> None:
        assert mode in ("live", "log")
        self.tr = terminalreporter
        self.mode = mode
        self.capman = capture_manager
        self.clock = clock
        self.log_interval = log_interval
        self.started = clock()
        self.lock = threading.RLock()
        self._last = self.started if mode == "log" else float("-inf")
        self._drawn = ""  # the live text currently on screen

    def update(self, counts: Counts, failed_tests: int) -> None:
        with self.lock:
            now = self.clock()
            interval = LIVE_INTERVAL if self.mode == "live" else self.log_interval
            if now - self._last < interval:
                return
            self._last = now
            text = progress_text(counts, failed_tests, now - self.started)
            with self._uncaptured():
                if self.mode == "live":
                    self._draw(text)
                else:
                    self._log(text)

    def _log(self, text: str) -> None:
        # A line of its own, even in the middle of a row of dots.
        self.tr.ensure_newline()
        if self.tr._tw.width_of_current_line:
            self.tr._tw.line()
        self.tr._tw.line(text)

    def erase(self) -> None:
        """Remove the live text, so pytest's next write lands where it expects."""
        with self.lock:
            if self._drawn:
                with self._uncaptured():
                    self._raw("\b" * len(self._drawn) + " " * len(self._drawn) + "\b" * len(self._drawn))
                self._drawn = ""

    def _draw(self, text: str) -> None:
        tw = self.tr._tw
        room = tw.fullwidth - tw.width_of_current_line - 3
        text = "  " + text
        if room < 20:
            return
        self.erase()
        self._drawn = text[:room]
        self._raw(self._drawn)

    def _raw(self, text: str) -> None:
        # Bypass the TerminalWriter so its idea of the current line (which
        # pytest uses to right-align "[ 50%]") stays that of pytest's text.
        tw = self.tr._tw
        tw.flush()
        file = getattr(tw, "_file", sys.__stdout__)
        file.write(text)
        file.flush()

    @contextlib.contextmanager
    def _uncaptured(self):
        # Inside a test (no xdist) pytest captures fd 1; step out of it to write.
        if self.capman is not None and threading.current_thread() is threading.main_thread():
            with self.capman.global_and_fixture_disabled():
                yield
        else:
            yield


class WorkerCounts:
    """In an xdist worker: running counts, written to ``<dir>/<worker id>.json``."""

    def __init__(self, directory: str, worker_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.path.join(directory, f"{worker_id}.json")
        self.counts = Counts()
        self.clock = clock
        self._written = float("-inf")

    def example(self, outcome: str) -> None:
        self.counts.add(outcome)
        if self.clock() - self._written >= WORKER_WRITE_INTERVAL:
            self.flush()

    def flush(self) -> None:
        self._written = self.clock()
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(asdict(self.counts), f)
            os.replace(tmp, self.path)
        except OSError:  # the controller went away; progress is best effort
            pass


def read_worker_counts(directory: str) -> Counts:
    total = Counts()
    try:
        names = os.listdir(directory)
    except OSError:
        return total
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        total.examples += int(data.get("examples", 0))
        total.failed += int(data.get("failed", 0))
        total.xfailed += int(data.get("xfailed", 0))
    return total


class ProgressPlugin:
    """Registered in the pytest process that shows output (no xdist, or the xdist controller)."""

    def __init__(self, config: pytest.Config, line: ProgressLine, xdist_controller: bool) -> None:
        self.config = config
        self.line = line
        self.counts = Counts()
        self.failed_tests = 0
        self.directory = tempfile.mkdtemp(prefix="osdconform-progress-") if xdist_controller else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tests_started = False

    # Examples run here (no xdist).
    def example(self, outcome: str) -> None:
        self.counts.add(outcome)
        self.line.update(self.counts, self.failed_tests)

    def flush(self) -> None:
        pass

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.directory:
            node.workerinput[WORKERINPUT_KEY] = self.directory

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        if self.directory:
            self._thread = threading.Thread(target=self._poll, name="osdconform-progress", daemon=True)
            self._thread.start()
        try:
            return (yield)
        finally:
            self.stop()

    def _poll(self) -> None:
        while not self._stop.wait(LIVE_INTERVAL):
            # Not before the first test starts: until then xdist rewrites its
            # own status line ("initialized: 2/2 workers") with carriage returns.
            if self._tests_started:
                self.line.update(read_worker_counts(self.directory), self.failed_tests)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.line.erase()

    # Erase the live text before pytest writes, and hold the lock meanwhile.
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logstart(self, nodeid, location):
        with self.line.lock:
            self.line.erase()
            try:
                return (yield)
            finally:
                self._tests_started = True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport):
        with self.line.lock:
            self.line.erase()
            if report.when == "call" and report.failed:
                self.failed_tests += 1
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        with self.line.lock:
            self.line.erase()
            return (yield)

    def close(self) -> None:
        self.stop()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def progress_mode(config: pytest.Config) -> str:
    """``live``, ``log`` or ``off`` for this process (``off`` in xdist workers: nobody sees them)."""
    if hasattr(config, "workerinput"):
        return "off"
    mode = value(config, "osd_progress")
    tr = config.pluginmanager.getplugin("terminalreporter")
    if tr is None or mode == "off":
        return "off"
    if mode == "auto":
        if config.get_verbosity() < 0:
            return "off"
        return "live" if getattr(tr, "isatty", False) else "log"
    return mode


def start_progress(config: pytest.Config) -> Any:
    """The progress sink `Conformance.check` reports examples to, set up for this process."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        directory = workerinput.get(WORKERINPUT_KEY)
        return WorkerCounts(directory, workerinput.get("workerid", "gw")) if directory else None
    mode = progress_mode(config)
    if mode == "off":
        return None
    line = ProgressLine(
        config.pluginmanager.getplugin("terminalreporter"),
        mode,
        capture_manager=config.pluginmanager.getplugin("capturemanager"),
    )
    xdist_controller = getattr(config.option, "dist", "no") != "no"
    plugin = ProgressPlugin(config, line, xdist_controller)
    config.pluginmanager.register(plugin, "osdconform-progress")
    return plugin
