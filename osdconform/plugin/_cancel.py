"""A cancelled run cleans up: SIGTERM ends it as Ctrl-C does.

CI runners cancel a job with SIGTERM, to the pytest process or its whole
group.  Python's default SIGTERM ends the process at once, with no
``finally`` and no fixture teardown, so the worlds' directories and
checkpoint directories stayed behind (the ranks themselves die with their
driver).  Here SIGTERM raises KeyboardInterrupt in the main thread, as
Ctrl-C does: pytest stops, the pools close, the directories go.  A second
SIGTERM ends the process at once (the handler is restored to the default
first), so a run stuck in teardown can still be stopped.

An xdist worker killed with SIGKILL cannot clean up at all: the controller
sweeps what dead drivers left (`harness._workdirs.sweep_stale_workdirs`) at the
end of the run.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_previous: list[Any] = []


def _terminate(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"terminated by {signal.Signals(signum).name}")


def install() -> bool:
    """SIGTERM as Ctrl-C for this process, unless someone else already handles it
    (an outer pytest session of the same process, for one).  True if installed:
    then, and only then, `uninstall` is due."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    _previous.append(signal.signal(signal.SIGTERM, _terminate))
    return True


def uninstall() -> None:
    """Put back the handler the last `install` that returned True replaced."""
    if _previous and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _previous.pop())
