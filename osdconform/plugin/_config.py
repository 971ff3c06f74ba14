"""The ``--osd-*`` options: declared in every pytest run, read only when the suites run.

The plugin's entry point (`osdconform.plugin`) declares them, and pytest loads
that entry point in every run of an environment where osdconform is installed,
so this module imports nothing but pytest.  Every option stores None unless it
was given: that is how the entry point tells a run that asked for osdconform
(`asked`) from anyone else's, and `value` supplies the default otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

#: ``--osd-progress`` values (`_progress` draws them).
PROGRESS_MODES = ("auto", "live", "log", "off")


@dataclass(frozen=True)
class Option:
    flag: str
    default: Any
    metavar: str | None
    help: str
    type: Any = None
    #: A switch (``--osd-coverage``): stores True when given.
    switch: bool = False

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--osd-backend", "reference", "SPEC",
           "backend under test: a built-in name, a name registered in the 'osdconform.backends' "
           "entry-point group, or package.module:attr (default: reference)"),
    Option("--osd-world-sizes", None, "LIST",
           "comma-separated world sizes scenarios may use (default: 1,2,3,4, those the backend supports)"),
    Option("--osd-device", "cpu", "cpu|cuda", "cpu (gloo) or cuda (NCCL, one GPU per rank) (default: cpu)"),
    Option("--osd-xfails", None, "FILE",
           "expected-failures file (default: the one shipped for a built-in backend)"),
    Option("--osd-timeout", 120.0, "SECONDS",
           "per-example timeout; a world that exceeds it is torn down (default: 120)", type=float),
    Option("--osd-report", None, "FILE",
           "write the JSON conformance report (counts per property x backend x feature) to FILE; "
           "render it with `osdconform report FILE`"),
    Option("--osd-progress", "auto", "|".join(PROGRESS_MODES),
           "progress line: live on a terminal, a line per 30 s in logs, none under -q (default: auto)"),
    Option("--osd-space", None, "full|core",
           "the scenario space: full (module trees, every torch.optim optimizer, every plan; the "
           "default for the built-in backends, green with their expected failures) or core (MLPs; "
           "SGD/Adam/AdamW; plans none, ddp, fsdp2: a quick first look; the default for the "
           "framework adapters and third-party backends)"),
    Option("--osd-checkpoint-dir", None, "DIR",
           "where examples' checkpoint directories are made (default: the system's temporary "
           "directory); under torchrun with several nodes, a path every node can reach"),
    Option("--osd-repro-dir", None, "DIR",
           "where failing examples' reproducer scripts go (default: ./osdconform-repro)"),
    Option("--osd-coverage", False, None,
           "after the run, print how many examples exercised each optimizer, plan, "
           "world size, dtype and feature", switch=True),
)
_BY_DEST = {o.dest: o for o in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("osdconform", "optimizer-state conformance")
    for o in OPTIONS:
        if o.switch:
            group.addoption(o.flag, action="store_const", const=True, default=None, help=o.help)
        else:
            group.addoption(o.flag, default=None, type=o.type, metavar=o.metavar, help=o.help)


def asked(config: pytest.Config) -> list[str]:
    """The ``--osd-*`` options this run was given (empty: the run did not ask for osdconform)."""
    return [o.flag for o in OPTIONS if config.getoption(o.dest, None) is not None]


def value(config: pytest.Config, dest: str) -> Any:
    """Option `dest` (e.g. ``"osd_backend"``) as given, else its default."""
    given = config.getoption(dest, None)
    return _BY_DEST[dest].default if given is None else given


#: Where the run's `Conformance` (the ``osd`` fixture's value) is kept on the config.
CONFORMANCE_KEY: pytest.StashKey[Any] = pytest.StashKey()
