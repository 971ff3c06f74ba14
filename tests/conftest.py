"""Make ``tests/`` importable, here and in every rank process.

Rank tasks must be module-level functions that a rank can import by name
(`WorldPool` pickles them by reference); they live in ``tests/helpers/rank_tasks.py``.
``tests/`` is not a package, and which directories pytest puts on ``sys.path``
depends on its import mode, so put ``tests/`` there explicitly.  Ranks are
handed the driver's ``sys.path`` when their world starts (forked from the fork
server, or spawned), so they can import ``helpers.rank_tasks`` too.
"""

import os
import sys
import tempfile

_TESTS = os.path.dirname(os.path.abspath(__file__))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


def _cache_bytecode() -> None:
    """Let every Python process these tests start reuse compiled bytecode.

    Where the environment turns bytecode caching off (``PYTHONDONTWRITEBYTECODE``,
    as on this project's CI machines), each of the ~70 pytest subprocesses, fork
    servers and reproducer scripts these tests start compiles osdconform from
    source, and pytest rewrites osdconform and Hypothesis again: about 1.2 s of
    a 4.3 s pytest start-up here.  The cache goes to a folder of its own
    (``PYTHONPYCACHEPREFIX``), never beside anyone's sources; set here, in the
    process that starts the xdist workers, so that they and everything they start
    inherit it.  Only osdconform's own test run does this (this conftest).
    """
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    prefix = os.path.join(tempfile.gettempdir(), f"osdconform-tests-pycache-{os.getuid()}")
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    sys.dont_write_bytecode = False
    sys.pycache_prefix = prefix


_cache_bytecode()

# osdconform's own tests run with the conformance plugin (its profiles, the `osd` fixture):
# the entry point alone is inert.
pytest_plugins = ["pytester", "osdconform.plugin.conformance"]

