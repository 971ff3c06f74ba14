"""Make ``tests/`` importable, here and in every rank process.

Rank tasks must be module-level functions that a rank can import by name
(`WorldPool` pickles them by reference); they live in ``tests/_rank_tasks.py``.
``tests/`` is not a package, and which directories pytest puts on ``sys.path``
depends on its import mode, so put ``tests/`` there explicitly.  Ranks are
started with ``spawn``, which hands the driver's ``sys.path`` to each child,
so they can import ``_rank_tasks`` too.
"""

import os
import sys

_TESTS = os.path.dirname(os.path.abspath(__file__))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

pytest_plugins = ["pytester"]


_FULL_SPACE_XFAILS = os.path.join(os.path.dirname(__file__), "full_space_xfails.txt")


def pytest_collection_modifyitems(config, items):
    """Mark the full-space tests listed in full_space_xfails.txt as expected failures.

    Not strict: the list names whole tests (some parametrizations pass), and the
    point is to keep them running, so each one that starts passing shows as XPASS.
    """
    import pytest

    with open(_FULL_SPACE_XFAILS) as f:
        prefixes = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    reason = "full scenario space not yet composed across its dimensions (issue 3); see tests/full_space_xfails.txt"
    for item in items:
        if any(item.nodeid.startswith(p) for p in prefixes):
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
