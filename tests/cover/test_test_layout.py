"""The layout of the test files themselves.

The README's test command collects ``tests`` and ``suites`` in one pytest run,
and neither is a package: pytest imports each test module by its basename, so
two files of the same name (``suites/test_devices.py`` and a
``tests/cover/test_devices.py``) end that run with "import file mismatch"
before a test runs.  A CI run of this stop met it.
"""

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_two_test_modules_share_a_basename():
    names = Counter(p.name for top in ("tests", "suites") for p in (ROOT / top).rglob("test_*.py"))
    assert names, "no test modules found"
    clashes = sorted(name for name, count in names.items() if count > 1)
    assert not clashes, f"test modules with the same basename (pytest cannot collect both): {clashes}"
