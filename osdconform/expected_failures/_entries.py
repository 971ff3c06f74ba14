"""Expected failures: plain-text files, one per backend.

Each non-comment line is one entry with five fields separated by ``" | "``::

    property | predicate | match | reason | reproducer

* ``property``: the suite property it applies to (``roundtrip``, ``fidelity``,
  ``reshard``, ``resume``, ``flatten``, ``types``, ``isolation``,
  ``side_effects``, ``errors``, ``schedulers``), or several separated by
  commas (one defect seen by several properties);
* ``predicate``: a Python expression (no builtins) over ``s`` (the `Scenario`),
  ``o`` (the `StateOptions`), ``step`` (the name of the property step run,
  e.g. ``"reshard_load"``: a property of two steps may fail in one only) and
  ``fault`` (the injected `Fault` of an ``errors`` example, else None: each
  fault kind is its own defect), e.g. ``o.full and "optimizer:adam" in s.features``;
  it may call the named conditions of `_conditions` (``got_grad(s)``,
  ``dsd_set_misses_state(s)``, ...);
* ``match``: text the failure message must contain; a failure that does not
  contain it is a real failure, so one known bug cannot hide another;
* ``reason``: why this is a defect of the backend, in a sentence;
* ``reproducer``: a link, or a path (relative to the file) of a standalone
  script that fails while the bug exists.

A matching example that fails as described counts as an expected failure and
the test goes on.  A matching example that passes is an XPASS: under the
``ci`` profile it fails the test, so a fixed bug is noticed and its entry
removed; under the other profiles it is reported at the end of the run.  An
entry that no example of a run applied to is warned about at the end of the
run (a stale predicate, e.g. a renamed feature tag, would otherwise hide
forever).

Entries are named by ``file:line``; the files shipped with osdconform are
named relative to the package (``osdconform/expected_failures/torch-dsd.txt:3``)
so that JSON reports from different checkouts or machines compare.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._conditions import HELPERS

#: The builtins a predicate may call (it is an expression over plain data, not a program).
PREDICATE_BUILTINS = {f.__name__: f for f in (len, any, all, sum, min, max, sorted, set)}

SHIPPED_DIR = Path(__file__).parent


class XfailFileError(ValueError):
    """A malformed expected-failures file; the message names file and line."""


@dataclass
class XfailEntry:
    property: str
    predicate: str
    match: str
    reason: str
    reproducer: str
    where: str
    _code: Any = field(repr=False, default=None)

    def applies(
        self, prop: str, scenario: Any, options: Any, *, step: str | None = None, fault: Any = None
    ) -> bool:
        if prop not in self.properties:
            return False
        # Globals, not locals: a comprehension's body sees only globals.
        names = {
            "__builtins__": PREDICATE_BUILTINS, **HELPERS, "s": scenario, "o": options, "step": step, "fault": fault,
        }
        try:
            return bool(eval(self._code, names))
        except Exception as exc:
            raise XfailFileError(f"{self.where}: predicate {self.predicate!r} raised {exc!r}") from exc

    @property
    def properties(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.property.split(","))

    def explains(self, failure: BaseException) -> bool:
        return self.match in str(failure)

    def describe(self) -> str:
        return f"{self.where}: {self.property} where {self.predicate}: {self.reason} ({self.reproducer})"


def parse_xfails(text: str, source: str) -> list[XfailEntry]:
    entries = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{lineno}"
        fields = [f.strip() for f in line.split(" | ", 4)]
        if len(fields) != 5 or not all(fields):
            raise XfailFileError(
                f"{where}: expected 'property | predicate | match | reason | reproducer', got {line!r}"
            )
        prop, predicate, match, reason, repro = fields
        try:
            code = compile(predicate, where, "eval")
        except SyntaxError as exc:
            raise XfailFileError(f"{where}: predicate {predicate!r} is not a Python expression: {exc.msg}") from None
        entries.append(XfailEntry(prop, predicate, match, reason, repro, where, code))
    return entries


def load_xfails(path: str | os.PathLike, source: str | None = None) -> list[XfailEntry]:
    """Entries of the file at `path`, named ``<source or path>:<line>``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise XfailFileError(f"cannot read expected-failures file {path}: {exc.strerror}") from None
    return parse_xfails(text, source or str(path))


def shipped_xfails(backend_name: str) -> list[XfailEntry]:
    """The expected failures shipped with osdconform for a built-in backend."""
    path = SHIPPED_DIR / f"{backend_name}.txt"
    if not path.exists():
        return []
    return load_xfails(path, source=f"osdconform/expected_failures/{path.name}")
