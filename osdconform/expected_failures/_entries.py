"""Expected failures: plain-text files, one per backend, one block of named fields per entry.

Entries are separated by blank lines; ``#`` lines are comments.  Each entry
is a block of ``name: value`` fields, one per line, in any order; a value
may go on over the following lines indented by at least one space (they are
joined to it with one space each)::

    # The flat full form cannot be set at all.
    property: roundtrip, fidelity
    when:     o.full and o.flatten and "plan:fsdp1" not in s.features
    match:    'param_groups.0.params.0'
    reason:   set_optimizer_state_dict(full_state_dict=True, flatten_optimizer_state_dict=True)
      raises KeyError on the very dict get_optimizer_state_dict returned
    reproducer: repro/torch_dsd_full_flatten_set_keyerror.py
    space:    full

* ``property``: the suite property it applies to (``roundtrip``, ``fidelity``,
  ``reshard``, ``resume``, ``flatten``, ``types``, ``isolation``,
  ``side_effects``, ``errors``, ``schedulers``, ``cross_device``), or several separated by
  commas (one defect seen by several properties);
* ``when``: the predicate, a Python expression (no builtins but ``len``,
  ``any``, ``all``, ``sum``, ``min``, ``max``, ``sorted``, ``set``) over
  ``s`` (the `Scenario`; under a pipeline each stage's in turn, its
  optimizers cut to the stage's parameters as its rank builds them:
  `scenario._pipeline.stage_views`, the entry holding where it holds for
  some stage), ``o`` (the `StateOptions`), ``step`` (the name of
  the property step run, e.g. ``"reshard_load"``: a property of two steps may
  fail in one only), ``fault`` (the injected `Fault` of an ``errors``
  example, else None: each fault kind is its own defect), ``source``
  (the scenario whose checkpoint the step loads: the saving side of a
  reshard, whose plan may differ; else ``s`` itself), ``lifecycle`` (a
  lifecycle's steps, else ``()``: `osdconform.lifecycle`) and ``pipeline``
  (the whole scenario, of whose stages ``s`` is one: what a stage loads may
  depend on its peers, `_conditions_pipeline`), e.g.
  ``o.full and "optimizer:adam" in s.features``; it may call the named
  conditions of `_conditions` (``got_grad(s)``, ``dsd_set_misses_state(s)``,
  ...).  Keep it a short expression: anything longer (the shipped files: over
  `MAX_PREDICATE` characters, or a comprehension) becomes a named,
  documented condition there;
* ``match``: text the failure message must contain; a failure that does not
  contain it is a real failure, so one known bug cannot hide another.  A
  failure reports every problem of its example (`PROBLEM_SEPARATOR` between
  them), and each problem must be explained by some entry on its own;
* ``also`` (optional): texts (separated by `` | ``) of the problems this
  defect causes further on in the same example, such as the parameters of a
  resumed run that trained from a wrong step count (``at params[``).  Such a
  problem is explained by the entry only where its ``match`` explains another
  problem of the same failure, so ``also`` never excuses a problem alone;
* ``reason``: why this is a defect of the backend;
* ``reproducer``: a link, or a path (relative to the file) of a standalone
  script that fails while the bug exists;
* ``space`` (optional, ``core`` by default): ``full`` for an entry that only
  scenarios of the full space (``--osd-space=full``) can match, so that a
  core run does not warn that it matched nothing;
* ``torch`` (optional, every version by default): the torch releases the
  defect holds for, a PEP 440 specifier set such as ``<2.14`` or
  ``>=2.6,<2.10`` (compared with the installed release, local tags such as
  ``+cpu`` dropped).  On any other torch the entry is off: it neither covers
  an example nor is warned about as matching nothing;
* ``device`` (optional, every device by default): ``cpu`` or ``cuda``, for a
  defect seen on that ``--osd-device`` only (a CUDA kernel's, say); on the
  other device the entry is off, as for ``torch``.

A matching example that fails as described counts as an expected failure and
the test goes on.  A matching example that passes is an XPASS: under the
``ci`` profile it fails the test, so a fixed bug is noticed and its entry
removed; under the other profiles it is reported at the end of the run.  An
XPASS of an entry with no upper torch bound says "fixed in torch X?", so an
upgrade that fixed the bug ends in a bound (``torch: <X``), not a deletion
that loses the record for older torch.  An
entry of the space that ran that no example applied to is warned about at the
end of the run (a stale predicate, e.g. a renamed feature tag, would
otherwise hide forever).

Entries are named by ``file:line``, the line of the entry's first field; the
files shipped with osdconform are named relative to the package
(``osdconform/expected_failures/torch-dsd.txt:3``) so that JSON reports from
different checkouts or machines compare.  A malformed file is refused with
an `XfailFileError` naming file and line.  ``python -m
osdconform.expected_failures`` (``osdconform xfails``) lists the entries.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ..scenario._pipeline import stage_views
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
    #: The space whose scenarios can match it: "core" (and so "full" too) or "full" only.
    space: str = "core"
    #: The torch releases it holds for (a PEP 440 specifier set; "" for every one).
    torch: str = ""
    #: The ``--osd-device`` it holds on ("" for every one).
    device: str = ""
    #: Texts of the problems the defect causes further on (the ``also`` field).
    also: tuple[str, ...] = ()

    def holds_for(self, torch_version: str) -> bool:
        """Whether the defect holds for torch `torch_version` (its ``torch`` field)."""
        return not self.torch or SpecifierSet(self.torch).contains(release(torch_version), prereleases=True)

    def holds_on(self, device: str) -> bool:
        """Whether the defect holds on ``--osd-device`` `device` (its ``device`` field)."""
        return not self.device or self.device == device

    def fixed_hint(self, torch_version: str) -> str:
        """What an XPASS on `torch_version` suggests: a fix in that release, if nothing bounds it above."""
        if any(spec.operator in ("<", "<=", "==", "~=", "===") for spec in SpecifierSet(self.torch)):
            return ""
        version = release(torch_version)
        return f"fixed in torch {version}? If so, bound the entry: 'torch: <{version}' (keep it for older torch)"

    def applies(
        self, prop: str, scenario: Any, options: Any, *, step: str | None = None, fault: Any = None,
        source: Any = None, lifecycle: tuple = (),
    ) -> bool:
        if prop not in self.properties:
            return False
        # Under a pipeline each rank's backend sees only its stage's optimizers:
        # the defect holds where it holds for some stage (`stage_views`).
        views = stage_views(scenario) if getattr(getattr(scenario, "plan", None), "kind", None) == "pp" else (scenario,)
        for view in views:
            # Globals, not locals: a comprehension's body sees only globals.
            names = {
                "__builtins__": PREDICATE_BUILTINS, **HELPERS, "s": view, "o": options, "step": step, "fault": fault,
                "source": view if source is None else source, "lifecycle": lifecycle, "pipeline": scenario,
            }
            try:
                if eval(self._code, names):
                    return True
            except Exception as exc:
                raise XfailFileError(f"{self.where}: predicate {self.predicate!r} raised {exc!r}") from exc
        return False

    @property
    def properties(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.property.split(","))

    def explains(self, failure: BaseException) -> bool:
        return self.match in str(failure)

    def describe(self) -> str:
        torch = f" on torch {self.torch}" if self.torch else ""
        device = f" on {self.device}" if self.device else ""
        return (
            f"{self.where}: {self.property} where {self.predicate}{torch}{device}: {self.reason} ({self.reproducer})"
        )


#: Between the problems of one failing example: a property that checks several
#: things (``errors``: the message, then the state after the failed load)
#: reports every check that fails, and each must be explained on its own, so a
#: known defect cannot hide another found in the same example.
PROBLEM_SEPARATOR = "\n-- and also --\n"


def explained_problems(entries: list[XfailEntry], failure: BaseException | str) -> list[tuple[str, XfailEntry | None]]:
    """Each problem of `failure` (its text) with the entry that explains it, or None.

    A problem is explained by an entry whose ``match`` it contains, or by one
    of its ``also`` texts where that entry's ``match`` explains another problem
    of the same failure (a consequence, never on its own).
    """
    parts = str(failure).split(PROBLEM_SEPARATOR)
    seen = [e for e in entries if any(e.match in part for part in parts)]
    return [
        (part, next((e for e in entries if e.match in part), None)
         or next((e for e in seen if any(text in part for text in e.also)), None))
        for part in parts
    ]


def explaining(entries: list[XfailEntry], failure: BaseException | str) -> list[XfailEntry]:
    """The entries that explain `failure`: one per problem in it, or none if any problem is
    unexplained (`explained_problems`)."""
    found: list[XfailEntry] = []
    for _, entry in explained_problems(entries, failure):
        if entry is None:
            return []
        if entry not in found:
            found.append(entry)
    return found


def check_of(problem: str) -> str:
    """The check a problem of a failure belongs to, for counting problems per check.

    A property's comparison names its check before the difference ("round
    trip (reference gather of source vs loaded optimizer): OSD mismatch at
    ..."; "errors (shape): optimizer before vs after the failed load: OSD
    mismatch ..."; "type preservation: ..."), with its numbers (resume's step
    counts) made ``N``; an exception raised by the backend is counted by the
    phase it was raised in ("raised in phase 'set'").
    """
    first = problem.strip().split("\n", 1)[0]
    head = first.split(": OSD mismatch", 1)[0] if ": OSD mismatch" in first else first.partition(": ")[0]
    if head != first and len(head) <= 100 and not any(q in head for q in "'\""):
        return re.sub(r"\d+", "N", head)
    phase = re.search(r" in phase '([^']+)'", problem)
    return f"raised in phase '{phase.group(1)}'" if phase else "raised"


def release(torch_version: str) -> str:
    """``2.13.0`` of ``2.13.0+cpu`` or ``2.13.0a0+git1234``: the release an entry's bound compares."""
    return Version(torch_version).base_version


def installed_torch() -> str:
    import torch

    return torch.__version__


FIELDS = ("property", "when", "match", "reason", "reproducer", "space", "torch", "device", "also")
REQUIRED = FIELDS[:5]
SPACES = ("core", "full")
#: The values of the ``device`` field (``--osd-device``'s).
DEVICE_NAMES = ("cpu", "cuda")
#: The longest predicate a shipped entry may spell out inline.
MAX_PREDICATE = 100


def parse_xfails(text: str, source: str) -> list[XfailEntry]:
    """The entries of `text` (named ``<source>:<line>``); strict, so a typo
    cannot silently turn an entry off."""
    entries = []
    block: dict[str, list] = {}  # field -> [value, line]
    last: str | None = None
    start = 0

    def close() -> None:
        if block:
            entries.append(_entry(block, f"{source}:{start}", source))
        block.clear()

    for lineno, raw in enumerate(text.splitlines() + [""], start=1):
        where = f"{source}:{lineno}"
        if not raw.strip():
            close()
            last = None
            continue
        if raw.lstrip().startswith("#"):
            continue
        if raw[0] in " \t":
            if last is None:
                raise XfailFileError(f"{where}: an indented line continues a field, but no field precedes it")
            block[last][0] = f"{block[last][0]} {raw.strip()}".lstrip()
            continue
        name, sep, value = raw.partition(":")
        name = name.strip()
        if not sep or name not in FIELDS:
            hint = " (one-line 'a | b | ...' entries are the old format)" if " | " in raw else ""
            raise XfailFileError(f"{where}: expected a field 'name: value' with name one of {', '.join(FIELDS)}, "
                                 f"got {raw.strip()!r}{hint}")
        if name in block:
            raise XfailFileError(f"{where}: field {name!r} given twice in one entry (separate entries by a blank line)")
        if not block:
            start = lineno
        block[name] = [value.strip(), lineno]
        last = name
    return entries


def _entry(block: dict[str, list], where: str, source: str) -> XfailEntry:
    missing = [f for f in REQUIRED if f not in block]
    if missing:
        raise XfailFileError(f"{where}: entry lacks field(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    for name, (value, line) in block.items():
        if not value:
            raise XfailFileError(f"{source}:{line}: field {name!r} is empty")
    space = block.get("space", ["core"])[0]
    if space not in SPACES:
        raise XfailFileError(f"{source}:{block['space'][1]}: space must be one of {', '.join(SPACES)}, got {space!r}")
    torch_spec = block.get("torch", ["", 0])
    try:
        SpecifierSet(torch_spec[0])
    except InvalidSpecifier:
        raise XfailFileError(
            f"{source}:{torch_spec[1]}: torch must be a version specifier set such as '<2.14' "
            f"or '>=2.6,<2.10', got {torch_spec[0]!r}"
        ) from None
    device = block.get("device", ["", 0])
    if device[0] and device[0] not in DEVICE_NAMES:
        raise XfailFileError(
            f"{source}:{device[1]}: device must be one of {', '.join(DEVICE_NAMES)}, got {device[0]!r}"
        )
    predicate, line = block["when"]
    try:
        code = compile(predicate, f"{source}:{line}", "eval")
    except SyntaxError as exc:
        raise XfailFileError(
            f"{source}:{line}: predicate {predicate!r} is not a Python expression: {exc.msg}"
        ) from None
    value = {name: v for name, (v, _) in block.items()}
    return XfailEntry(value["property"], predicate, value["match"], value["reason"], value["reproducer"], where, code,
                      space=space, torch=torch_spec[0], device=device[0],
                      also=tuple(t.strip() for t in value.get("also", "").split(" | ") if t.strip()))


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
