"""The ``osdconform`` command: ``run`` (the suites, also under torchrun), ``report``, ``backends``, ``repro``.

`_main` parses the command line and dispatches; `_run` finds the suites (a
clone's ``suites/`` or an installed copy) and starts pytest or the scale-out.
"""

from ._main import main

__all__ = ["main"]
