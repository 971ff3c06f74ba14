"""Standalone reproducer scripts for failing examples, and the ``repro`` subcommand.

When an example fails, the plugin writes a Python script that runs that one
scenario again, without Hypothesis and without osdconform's warm-world
harness: it spawns ``world_size`` processes with ``torch.multiprocessing``,
joins a process group through a file store, and calls the same property step
the suite called.  It exits 1 while the property fails (or hangs) and 0 once
it holds, so it can go into a bug report, a bisection (``git bisect run``) or
an expected-failures entry as is.

Why not reuse the harness: a reproducer that went through the pool could
not tell a backend bug from a harness bug.  The script imports osdconform
only for the scenario classes, the backend registry, the device kinds and the
property step itself.

The scenario is written as its ``repr`` (frozen dataclasses of plain values;
the imports it needs are found by walking it).  If a ``repr`` ever fails to
rebuild an equal object, the script carries the pickled scenario instead, with
the ``repr`` as a comment.

The script's rank launcher (spawning the ranks, the minimal rank context, the
hang and crash verdicts) is the module `_launcher`, whose source each script
embeds, so it stays standalone.
"""

from __future__ import annotations

import argparse
import ast
import base64
import dataclasses
import datetime
import os
import pickle
import re
import subprocess
import sys
import textwrap
from typing import Any, Callable, Iterator

from . import _launcher

#: Default per-run timeout of a reproducer script, in seconds (``--timeout``).
DEFAULT_TIMEOUT = 120.0
#: Exit codes of a reproducer script.
EXIT_PASSED, EXIT_FAILED = 0, 1
#: Metadata assignments every script starts with (read back by ``--list``).
_META = ("TEST", "PROPERTY", "STEP", "BACKEND", "DEVICE")


def script_name(nodeid: str) -> str:
    """A file name for the reproducer of test `nodeid` (one file per test)."""
    base = nodeid.split("/")[-1].replace(".py::", "__")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_.") + ".py"


def _classes(obj: Any) -> Iterator[type]:
    """Every dataclass type reachable from `obj` (whose names its repr uses)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        yield type(obj)
        for f in dataclasses.fields(obj):
            yield from _classes(getattr(obj, f.name))
    elif isinstance(obj, (tuple, list, set, frozenset)):
        for item in obj:
            yield from _classes(item)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _classes(k)
            yield from _classes(v)


def _as_code(name: str, obj: Any) -> tuple[str, set[tuple[str, str]]]:
    """``NAME = <code that rebuilds obj>`` and the imports that code needs."""
    imports = {(cls.__module__, cls.__qualname__.split(".")[0]) for cls in _classes(obj)}
    text = repr(obj)
    namespace: dict[str, Any] = {}
    try:
        for module, attr in imports:
            namespace[attr] = getattr(sys.modules[module], attr)
        rebuilt = eval(text, namespace)  # noqa: S307 (our own repr)
    except Exception:
        rebuilt = None
    if rebuilt == obj:
        return f"{name} = {text}\n", imports
    blob = base64.b64encode(pickle.dumps(obj)).decode("ascii")
    commented = textwrap.indent(text, "# ")
    return (
        f"# repr (does not rebuild an equal object, so the pickle below is used):\n{commented}\n"
        f"{name} = pickle.loads(base64.b64decode({blob!r}))\n",
        {("base64", ""), ("pickle", "")},
    )


def _import_lines(imports: set[tuple[str, str]]) -> str:
    lines = []
    for module, attr in sorted(imports):
        lines.append(f"import {module}" if not attr else f"from {module} import {attr}")
    return "\n".join(lines)


def render_script(
    *,
    prop: str,
    step: Callable[..., Any],
    scenario: Any,
    backend_spec: str,
    options: Any,
    extra: tuple = (),
    device: str = "cpu",
    test: str = "",
    failure: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    prior: tuple = (),
) -> str:
    """The text of a reproducer script for one failing example.

    `step` is the property step the suite ran (a module-level function
    ``step(ctx, scenario, backend_spec, options, *extra)``); `failure` is
    what it raised (its first line is quoted in the docstring).  An `extra`
    argument that is an existing directory (an example's checkpoint folder,
    gone by the time the script runs) becomes a fresh empty directory shared
    by the script's ranks.  `prior`: ``(scenario, extra)`` of the worlds the
    example ran in before this one (a lifecycle's earlier world sizes), which
    the script runs first, in order, sharing those directories.
    """
    step_path = f"{step.__module__}:{step.__qualname__}"
    scenario_code, imports = _as_code("SCENARIO", scenario)
    options_code, more = _as_code("OPTIONS", options)
    imports |= more
    fresh = tuple(i for i, value in enumerate(extra) if isinstance(value, str) and os.path.isdir(value))
    extra_code, more = _as_code("EXTRA", tuple(None if i in fresh else v for i, v in enumerate(extra)))
    imports |= more
    prior_code, more = _as_code(
        "PRIOR", tuple((sc, tuple(None if i in fresh else v for i, v in enumerate(ex))) for sc, ex in prior)
    )
    imports |= more
    import torch

    from .. import __version__

    described = scenario.describe() if hasattr(scenario, "describe") else repr(scenario)
    opt_desc = options.describe() if hasattr(options, "describe") else repr(options)
    first_line = failure.strip().splitlines()[0] if failure.strip() else "(not recorded)"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"osdconform reproducer: property {prop!r} of backend {backend_spec!r}.\n\n"
        f"Written {stamp} by osdconform {__version__} (torch {torch.__version__}) for\n"
        f"{test or '(no test id)'}; a later failure of that test overwrites it, so after\n"
        "Hypothesis's shrinking it holds the final, smallest failing example.\n\n"
        f"It failed with: {first_line}\n\n"
        f"Scenario ({opt_desc}):\n{textwrap.indent(described, '  ')}\n\n"
        + (f"It runs in {len(prior) + 1} worlds one after another (world sizes "
           f"{', '.join(str(sc.world_size) for sc, _ in prior)} first).\n\n" if prior else "")
        + f"Runs that example once, without Hypothesis: spawns {scenario.world_size} process(es) with\n"
        "torch.multiprocessing, joins a process group and calls the property step the suite\n"
        "ran.  Exits 1 while the property fails (or hangs), 0 once it holds.\n\n"
        "    python THIS_FILE [--timeout SECONDS]\n"
    )
    meta = {"TEST": test, "PROPERTY": prop, "STEP": step_path, "BACKEND": backend_spec, "DEVICE": device}
    meta_code = "".join(f"{k} = {v!r}\n" for k, v in meta.items())
    return _TEMPLATE.format(
        docstring=header.replace("\\", "\\\\").replace('"""', '\\"\\"\\"'),
        imports=_import_lines(imports),
        meta=meta_code,
        scenario=scenario_code,
        options=options_code,
        extra=extra_code,
        prior=prior_code,
        fresh=fresh,
        timeout=float(timeout),
        launcher=launcher_source(),
    )


def write_script(directory: str, nodeid: str, **render_kwargs: Any) -> str:
    """Render and write the reproducer of test `nodeid` into `directory`; return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, script_name(nodeid))
    text = render_script(test=nodeid, **render_kwargs)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)  # readers never see half a script
    return path


#: Where `_launcher`'s embedded part starts and ends (marker lines in its source).
_LAUNCHER_BEGIN = "# -- BEGIN: embedded in every reproducer script"
_LAUNCHER_END = "# -- END of the embedded part --"


def launcher_source() -> str:
    """The part of `_launcher` every script carries: its imports and functions, not its placeholders."""
    with open(_launcher.__file__) as f:
        text = f.read()
    start = text.index("\n", text.index(_LAUNCHER_BEGIN)) + 1
    return text[start : text.index(_LAUNCHER_END)].rstrip("\n") + "\n"


_TEMPLATE = '''#!/usr/bin/env python
"""{docstring}"""

{imports}

{meta}
{scenario}
{options}
{extra}{prior}# Positions in EXTRA of directories (an example's checkpoint folder): each run uses a fresh one.
FRESH_DIRECTORIES = {fresh!r}
DEFAULT_TIMEOUT = {timeout!r}


# -- the rank launcher (osdconform/reporting/_launcher.py, as written with this script) --

{launcher}

if __name__ == "__main__":
    sys.exit(main())
'''


# -- the ``repro`` subcommand ---------------------------------------------------


def read_metadata(path: str) -> dict[str, str]:
    """The ``TEST``/``PROPERTY``/``STEP``/``BACKEND``/``DEVICE`` of a script, without running it."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    meta: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in _META and isinstance(node.value, ast.Constant):
                meta[target.id] = node.value.value
    return meta


def list_scripts(directory: str) -> list[tuple[str, dict[str, str]]]:
    """Reproducer scripts in `directory` (newest first) with their metadata."""
    found = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if not name.endswith(".py") or not os.path.isfile(path):
            continue
        try:
            meta = read_metadata(path)
        except (OSError, SyntaxError):
            continue
        if set(_META) <= set(meta):
            found.append((path, meta))
    found.sort(key=lambda item: os.path.getmtime(item[0]), reverse=True)
    return found


def repro_main(argv: list[str] | None = None) -> int:
    """``osdconform repro SCRIPT [--timeout S]`` or ``osdconform repro --list [DIR]``.

    Running a script returns its exit code (1 while the bug exists, 0 once
    fixed); listing returns 0 (1 if the folder holds no reproducer).
    """
    parser = argparse.ArgumentParser(
        prog="osdconform repro",
        description="Run a reproducer script written for a failing example, or list them.",
    )
    parser.add_argument("script", nargs="?", help="a reproducer script (.py)")
    parser.add_argument("--list", metavar="DIR", nargs="?", const="osdconform-repro", dest="list_dir",
                        help="list the reproducers in DIR (default: ./osdconform-repro)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before the example counts as hung (default: the script's own)")
    args = parser.parse_args(argv)
    if args.list_dir is not None:
        if not os.path.isdir(args.list_dir):
            print(f"osdconform repro: no folder {args.list_dir!r}", file=sys.stderr)
            return 1
        scripts = list_scripts(args.list_dir)
        for path, meta in scripts:
            print(f"{path}\n    {meta['TEST']}: {meta['PROPERTY']} on {meta['BACKEND']} ({meta['DEVICE']})")
        if not scripts:
            print(f"osdconform repro: no reproducer scripts in {args.list_dir!r}", file=sys.stderr)
        return 0 if scripts else 1
    if not args.script:
        parser.error("give a reproducer script, or --list DIR")
    if not os.path.isfile(args.script):
        parser.error(f"no such file: {args.script!r}")
    cmd = [sys.executable, args.script]
    if args.timeout is not None:
        cmd += ["--timeout", str(args.timeout)]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(repro_main())
