"""Expected failures: the known defects of each backend, in plain-text files beside this module.

One file per built-in backend (``torch-dsd.txt``, ...), each entry a block of
named fields (``property:``, ``when:``, ``match:``, ``reason:``,
``reproducer:``, optionally ``space: full`` and ``torch: <2.14``) with the reproducer script it
cites under ``repro/``.  `load_xfails` / `shipped_xfails` read them
(`_entries`, which documents the format); the named conditions their
predicates may call (``got_grad(s)``, ``dsd_get_creates_state(s)``, ...) live
in `_conditions`; ``python -m osdconform.expected_failures`` (``osdconform
xfails``) lists them (`_listing`).
"""

from ._conditions import HELPERS as CONDITIONS
from ._entries import (
    PROBLEM_SEPARATOR,
    SHIPPED_DIR,
    XfailEntry,
    XfailFileError,
    check_of,
    explained_problems,
    explaining,
    installed_torch,
    load_xfails,
    parse_xfails,
    shipped_xfails,
)

__all__ = [
    "CONDITIONS",
    "PROBLEM_SEPARATOR",
    "SHIPPED_DIR",
    "XfailEntry",
    "XfailFileError",
    "check_of",
    "explained_problems",
    "explaining",
    "installed_torch",
    "load_xfails",
    "parse_xfails",
    "shipped_xfails",
]
