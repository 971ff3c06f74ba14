"""The ``osdconform`` command (also ``python -m osdconform``).

Subcommands:

* ``run``: run the suites (``osdconform._run.run_main``; torchrun scale-out lives there);
* ``report RESULT.json [...] [--baseline OLD.json]``: the Markdown conformance
  matrix of one or more ``--osd-report`` files, and what changed since a baseline;
* ``repro``: a standalone reproducer for a failure (``osdconform._repro.repro_main``);
* ``xfails [--markdown] [BACKEND ...]``: the expected failures of the shipped
  files (``osdconform.expected_failures._listing``; the README's list is its Markdown);
* ``backends``: the backends known by name (built-in and ``osdconform.backends``
  entry points) and what each declares it supports.

``run`` and ``repro`` are imported only when used, so ``report`` and
``backends`` start fast and work without torch.distributed being touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from typing import Callable, Sequence

#: Subcommands implemented elsewhere: name -> (module, function, one-line help).
DELEGATED = {
    "run": ("osdconform.cli._run", "run_main", "run the conformance suites (see `osdconform run --help`)"),
    "repro": ("osdconform.reporting._repro", "repro_main", "write a standalone reproducer for a failure (see `osdconform repro --help`)"),
    "xfails": ("osdconform.expected_failures._listing", "xfails_main",
               "list the expected failures (known defects) of the shipped files (see `osdconform xfails --help`)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osdconform",
        description="Property-based conformance suite for optimizer-state checkpointing in PyTorch.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    report = sub.add_parser(
        "report",
        help="render --osd-report JSON as a Markdown conformance matrix, optionally against a baseline",
        description="Render one or more JSON reports written by `pytest --osd-report FILE` as a Markdown "
        "conformance matrix; with --baseline, also list new failures, fixed and newly unsupported cells.",
    )
    report.add_argument("results", nargs="+", metavar="RESULT.json", help="report(s) of this run (one per backend)")
    report.add_argument("--baseline", action="append", metavar="OLD.json",
                        help="report(s) of a previous run to compare with (repeat for several backends)")
    report.add_argument("-o", "--output", metavar="FILE", help="write the Markdown here instead of stdout")
    report.add_argument("--fail-on-new-failures", action="store_true",
                        help="exit 1 if the baseline comparison shows new failures")
    backends = sub.add_parser("backends", help="list known backends and their declared capabilities")
    backends.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "report":
        return _report(args)
    if args.command == "backends":
        return _backends(args)
    parser.print_help()
    return 2


def _delegate(command: str, argv: list[str]) -> int:
    module_name, function_name, _ = DELEGATED[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"osdconform {command}: not available in this installation ({module_name} is missing)", file=sys.stderr)
        return 2
    entry: Callable[[list[str]], int] = getattr(module, function_name)
    return int(entry(argv) or 0)


def _report(args: argparse.Namespace) -> int:
    from ..reporting._report import ReportError, difference, load_report, render_markdown

    try:
        current = [load_report(path) for path in args.results]
        baseline = [load_report(path) for path in args.baseline] if args.baseline else None
    except ReportError as exc:
        print(f"osdconform report: {exc}", file=sys.stderr)
        return 2
    text = render_markdown(current, baseline)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.fail_on_new_failures and baseline is not None and difference(baseline, current).regressed:
        print("osdconform report: new failures since the baseline", file=sys.stderr)
        return 1
    return 0


def describe_capabilities(caps) -> dict:
    """Every declared field of a `Capabilities` as plain JSON values (sets sorted)."""
    data = {}
    for f in dataclasses.fields(caps):
        value = getattr(caps, f.name)
        data[f.name] = sorted(value) if isinstance(value, (set, frozenset)) else value
    return data


def _backends(args: argparse.Namespace) -> int:
    from ..backends import BackendNotInstalled, BackendSpecError, known_backends, resolve_backend

    rows = []
    status = 0
    for name, source in known_backends().items():
        row = {"name": name, "origin": source.origin, "target": source.target}
        try:
            # On the CPU with the installed torch: what this machine's runs can draw.
            row["capabilities"] = describe_capabilities(resolve_backend(name).capabilities.on("cpu"))
        except BackendNotInstalled as exc:  # an optional extra: listed, not a failure
            row["not_installed"] = str(exc)
        except BackendSpecError as exc:
            row["error"] = str(exc)
            status = 1
        rows.append(row)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return status
    for row in rows:
        print(f"{row['name']}  [{row['origin']}]  {row['target']}")
        if "error" in row:
            print(f"    cannot load: {row['error']}")
            continue
        if "not_installed" in row:
            print(f"    not installed: {row['not_installed']}")
            continue
        caps = dict(row["capabilities"])
        flags = [name for name, value in caps.items() if value is True]
        print(f"    supports: {', '.join(flags) or 'nothing'}")
        print(f"    plans: {', '.join(caps.pop('plans', []))}")
        for _kind, why in caps.pop("refused", []):
            print(f"    refused on this torch: {why}")
        gpu = caps.pop("gpu_plans", [])
        if gpu:
            print(f"    plans on a GPU only (--osd-device=cuda): {', '.join(gpu)}")
        limit = caps.pop("max_world_size", None)
        print(f"    world sizes: {'any' if limit is None else f'up to {limit}'}")
        for name, value in caps.items():
            if not isinstance(value, bool) and value is not None:
                print(f"    {name}: {value}")
    print("\nAny other backend: --osd-backend=package.module:attr, or register a name in the "
          "'osdconform.backends' entry-point group; either may take keyword literals for a "
          "factory: 'package.module:make(compress=True)'.")
    return status
