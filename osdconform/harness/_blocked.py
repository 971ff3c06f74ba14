"""Whether rank processes are blocked: no thread runnable and no CPU time used, for a while.

After a rank raises, the others may be waiting in a collective the raiser will
never join: gloo waits for its process-group timeout (30 minutes), so the
driver gives them a grace period (`World.run`'s ``grace``, 5 s) and then
reports them as not answering.  Expected failures that raise on one rank paid
those 5 s in every example: most of the FSDP1 matrix's time (one scheduler
test: 78 s with a 5 s grace, 25 s with 0.5 s).  Here the driver looks instead:
ranks that have had no runnable thread and used no CPU time for `settle`
seconds on end are waiting, not working, and the wait ends there.  A rank
that computes (or is runnable, waiting for a core on a loaded machine) keeps
the whole grace period.

Linux only (``/proc``); elsewhere nothing is known and the grace period holds.
"""

from __future__ import annotations

import os
import time
from typing import Iterable


def _sample(pids: Iterable[int]) -> tuple[int, bool] | None:
    """CPU ticks used by `pids` in all (every thread), and whether any thread is runnable;
    None if /proc cannot say (no /proc, a process gone)."""
    total, runnable = 0, False
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (the whole process)
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    runnable = runnable or f.read().rsplit(")", 1)[1].split()[0] == "R"
    except (OSError, ValueError, IndexError):
        return None
    return total, runnable


class BlockedWatch:
    """Watches a set of processes for being blocked `settle` seconds on end (call `blocked` often)."""

    def __init__(self, settle: float = 1.0) -> None:
        self.settle = settle
        self._cpu: int | None = None
        self._since: float | None = None

    def blocked(self, pids: Iterable[int]) -> bool:
        now = time.monotonic()
        sample = _sample(pids)
        if sample is None or sample[1]:  # unknown, or a thread is runnable: working
            self._cpu, self._since = None, None
            return False
        cpu = sample[0]
        if cpu != self._cpu:  # used CPU since the last look: the quiet spell starts now
            self._cpu, self._since = cpu, now
            return False
        return now - (self._since or now) >= self.settle
