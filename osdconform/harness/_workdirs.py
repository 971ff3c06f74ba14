"""Where worlds and examples keep their files, and sweeping what a killed driver left.

A world's directory (rank logs) and an example's checkpoint directory carry the
driver's pid in their names, so whoever runs next can tell the directories of
a driver that was SIGKILLed (it cannot remove them itself) from a live one's.
Why its own module: the world (`_world`), the pool, the plugin's fixture and its
session hooks all name these directories.
"""

from __future__ import annotations

import os
import shutil
import tempfile

#: World directories are ``<tmp>/osdconform-w<size>-p<driver pid>-<random>``.
WORKDIR_PREFIX = "osdconform-w"
#: Checkpoint directories of examples are ``<tmp>/osdconform-ckpt-p<driver pid>-<random>``.
CHECKPOINT_PREFIX = "osdconform-ckpt-"


def sweep_stale_workdirs() -> list[str]:
    """Remove world and checkpoint directories whose driver is gone (it was killed with SIGKILL).

    A driver removes its directories itself, but a SIGKILLed one (an xdist
    worker killed mid-run, say) cannot; its ranks die with it
    (``PR_SET_PDEATHSIG``) and cannot either.
    """
    removed = []
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        if not name.startswith((WORKDIR_PREFIX, CHECKPOINT_PREFIX)):
            continue
        try:
            pid = int(name.split("-p", 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # the driver is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # someone else's live process
        shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
        removed.append(name)
    return removed
