"""Make ``tests/`` importable, here and in every rank process.

Rank tasks must be module-level functions that a rank can import by name
(`WorldPool` pickles them by reference); they live in ``tests/helpers/rank_tasks.py``.
``tests/`` is not a package, and which directories pytest puts on ``sys.path``
depends on its import mode, so put ``tests/`` there explicitly.  Ranks are
started with ``spawn``, which hands the driver's ``sys.path`` to each child,
so they can import ``helpers.rank_tasks`` too.
"""

import os
import sys

_TESTS = os.path.dirname(os.path.abspath(__file__))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# osdconform's own tests run with the conformance plugin (its profiles, the `osd` fixture):
# the entry point alone is inert.
pytest_plugins = ["pytester", "osdconform.plugin.conformance"]

