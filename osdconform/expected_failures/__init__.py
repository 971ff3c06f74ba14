"""Expected failures: the known defects of each backend, in plain-text files beside this module.

One file per built-in backend (``torch-dsd.txt``, ...), each entry with the
reproducer script it cites under ``repro/``.  `load_xfails` / `shipped_xfails`
read them (`_entries`); the named conditions their predicates may call
(``got_grad(s)``, ``dsd_set_misses_state(s)``, ...) live in `_conditions`.
"""

from ._conditions import HELPERS as CONDITIONS
from ._entries import SHIPPED_DIR, XfailEntry, XfailFileError, load_xfails, parse_xfails, shipped_xfails

__all__ = [
    "CONDITIONS",
    "SHIPPED_DIR",
    "XfailEntry",
    "XfailFileError",
    "load_xfails",
    "parse_xfails",
    "shipped_xfails",
]
