"""How rank processes start: forked from a server that has already imported torch.

A rank used to be a fresh ``spawn`` process, which imports torch (about 1.5 s
of CPU here) before it can join its world: a world of 4 on a 2-core machine
paid that four times, and every xdist worker, every respawn after a hang and
every subprocess test paid it again.  Now each driver process starts one
multiprocessing *fork server* (the standard library's ``forkserver`` start
method), the first time it needs a world, with torch and the rank code
preloaded (`PRELOAD`); every rank of every world after that is a fork of it.

What ``spawn`` gave is kept:

* The server is started like a spawned process (a fresh interpreter that
  inherits nothing of the driver: no threads, no pytest, no CUDA), and it is
  single-threaded when it forks.
* No CUDA is initialised before a fork: importing torch does not initialise
  it, and the server runs nothing else; a rank picks its GPU after the fork
  (``_devices.DeviceKind.setup``) and reads ``CUDA_VISIBLE_DEVICES`` then.
* No state leaks between worlds: every rank is a fork of the server, never of
  an earlier rank, so a world starts from the same clean state as the first.
* A rank sees the driver's environment as it is when its world starts (`World`
  sends it; the server's own is from when it started), as a spawned rank did.
  Only what torch reads while it is imported comes from the server's start.
* Ranks still die with their driver, even a SIGKILLed one: each watches the
  driver's pid (`_worker.die_with_driver`), and the server exits once the
  driver and its last rank are gone.

The fork server is the process's own (multiprocessing keeps one per
process).  If the process already runs one (a user's code started it), the
ranks fork from that one, without the preload: correct, only slower.  If
osdconform starts it, a user's later ``forkserver`` processes in the same
process fork from it too and find torch already imported.  Set
``OSDCONFORM_START_METHOD=spawn`` to start every rank with ``spawn`` as
before (also what happens where ``forkserver`` does not exist).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

#: Start methods `start_context` knows, the default first.
START_METHODS = ("forkserver", "spawn")

#: What the fork server imports once, so that no rank imports it again: torch, the
#: rank code, and what the first task of a property would import (torch's state-dict
#: APIs pull in FSDP, DTensor and DCP, ~0.7 s a rank; a first FSDP2 step imports
#: torch._dynamo, ~1 s more).  Nothing here touches a device or starts a thread
#: (tests/cover/test_start.py checks that the server runs one thread).
PRELOAD = [
    "torch",
    "torch.distributed",
    "torch._dynamo",
    "torch.distributed.optim",
    "torch.distributed.checkpoint.state_dict",
    "osdconform.harness._worker",
    "osdconform.harness._devices",
    "osdconform.backends",
    "osdconform.properties",
]

#: The environment variable that picks the start method (default `START_METHODS[0]`).
START_METHOD_ENV = "OSDCONFORM_START_METHOD"


def start_method(requested: str | None = None) -> str:
    """The start method to use: `requested`, else ``$OSDCONFORM_START_METHOD``, else ``forkserver``
    where this platform has it (``spawn`` otherwise)."""
    method = requested or os.environ.get(START_METHOD_ENV) or START_METHODS[0]
    if method not in START_METHODS:
        raise ValueError(f"unknown start method {method!r} (from {START_METHOD_ENV}?); choose from {START_METHODS}")
    if method == "forkserver" and "forkserver" not in mp.get_all_start_methods():
        return "spawn"
    return method


def start_context(requested: str | None = None) -> Any:
    """The multiprocessing context rank processes are started with (see the module docstring)."""
    method = start_method(requested)
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Read when the server starts; ignored if this process already runs one.
        ctx.set_forkserver_preload(PRELOAD)
    return ctx
