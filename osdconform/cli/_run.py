"""The ``run`` subcommand: run the conformance suites, from a clone or an installed package.

    osdconform run [SELECTION ...] [-- PYTEST_ARGS ...]

SELECTION names suite files or test ids relative to the suites folder
(``test_roundtrip.py::test_fidelity``); none means every suite.  Everything
after ``--`` goes to pytest as is (``-n auto``, ``--osd-backend=torch-dsd``,
``--hypothesis-profile=nightly``, ``-k ...``).

Where the suites are: a clone (or an editable install) keeps them in
``suites/`` next to the ``osdconform`` package, and that folder is used, so
``python -m pytest suites`` and ``osdconform run`` run the same files.  A
wheel carries the same files as the package ``osdconform._suites`` (setup.py
maps it onto ``suites/``).

Under torchrun (``torchrun ... -m osdconform run -- ...``) the processes form
one scale-out world: rank 0 runs pytest here, the others serve its examples
(see `osdconform.harness._scaleout`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import osdconform

#: Marks the root of a clone: the suites next to the package are the ones to run.
_CLONE_MARKER = "pyproject.toml"
_REWRITE_WARNING = "Module already imported so cannot be rewritten; osdconform"
#: Pytest options that start xdist workers: meaningless in a scale-out world.
_XDIST_OPTIONS = ("-n", "--numprocesses", "--dist", "--maxprocesses")


def suites_dir() -> tuple[Path, bool]:
    """The folder holding the suites, and whether it is a clone's (else an installed copy)."""
    package = Path(osdconform.__file__).resolve().parent
    clone = package.parent / "suites"
    if (package.parent / _CLONE_MARKER).is_file() and clone.is_dir():
        return clone, True
    installed = package / "_suites"
    if installed.is_dir():
        return installed, False
    raise FileNotFoundError(
        f"no suites found: neither {clone} (a clone) nor {installed} (an installed package)"
    )


def _targets(selections: list[str], where: Path) -> list[str]:
    """Suite-relative selections (``file.py``, ``file.py::test``) as paths pytest accepts."""
    if not selections:
        return [str(where)]
    out = []
    for sel in selections:
        path, sep, rest = sel.partition("::")
        candidate = where / path
        if not candidate.exists() and Path(path).exists():
            candidate = Path(path)  # a path the user gave from here
        if not candidate.exists():
            raise FileNotFoundError(
                f"no suite {path!r} in {where} (suites: "
                f"{', '.join(sorted(p.name for p in where.glob('test_*.py')))})"
            )
        out.append(f"{candidate}{sep}{rest}")
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osdconform run",
        description="Run the conformance suites (pytest options go after --).",
        epilog="example: osdconform run -- -n auto --osd-backend=torch-dsd",
    )
    parser.add_argument("selections", nargs="*", metavar="SELECTION",
                        help="suite files or test ids relative to the suites folder (default: all)")
    parser.add_argument("--where", action="store_true", help="print the suites folder and exit")
    return parser


def pytest_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split `argv` into run's own options and pytest's (everything after ``--``)."""
    own, passthrough = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = _parser()
    args, unknown = parser.parse_known_args(own)
    if unknown:
        parser.error(f"unknown option(s) {unknown}: pytest options go after --, "
                     f"e.g. osdconform run -- {' '.join(unknown)}")
    where, is_clone = suites_dir()
    extra = [
        # This module imported osdconform before pytest could rewrite the plugin's asserts.
        "-W", f"ignore:{_REWRITE_WARNING}:pytest.PytestAssertRewriteWarning",
    ]
    extra += [] if is_clone else [
        # An installed copy may be read-only: keep pytest's cache where the user is.
        "-o", f"cache_dir={os.path.join(os.getcwd(), '.pytest_cache')}",
    ]
    return args, [*_targets(args.selections, where), *extra, *passthrough]


def _peek(passthrough: list[str]) -> argparse.Namespace:
    """The plugin options the scale-out world needs before pytest parses them."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--osd-device", default="cpu")
    peek.add_argument("--osd-timeout", type=float, default=120.0)
    return peek.parse_known_args(passthrough)[0]


def _uses_xdist(args: list[str]) -> bool:
    return any(a == opt or a.startswith(opt + "=") or (opt == "-n" and a.startswith("-n") and a[2:3].isalnum())
               for a in args for opt in _XDIST_OPTIONS)


def run_scaleout(args: list[str]) -> int:
    """One process of a torchrun launch: rank 0 runs pytest, the others serve it."""
    from ..harness import _scaleout

    if _uses_xdist(args):
        print("osdconform run: under torchrun the scale-out world is the parallelism; "
              "drop -n/--dist (xdist workers cannot share the world)", file=sys.stderr)
        return 4
    peek = _peek(args)
    member = _scaleout.ScaleOutMember(device=peek.osd_device, pg_timeout=peek.osd_timeout + 60.0)
    code = 1
    try:
        if member.rank == 0:
            pool = _scaleout.ScaleOutPool(member, timeout=peek.osd_timeout)
            _scaleout.activate(pool)
            try:
                import pytest

                code = int(pytest.main(args))
            finally:
                _scaleout.activate(None)
                pool.close()
        else:
            member.serve()
            code = 0
    finally:
        member.leave()
        if member.stuck:
            # A task thread may be blocked in a collective for good: exit
            # without waiting for it (or for any other teardown).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


def run_main(argv: list[str] | None = None) -> int:
    """``osdconform run``: the exit code is pytest's (under torchrun: rank 0's, 0 on the others)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, passthrough = pytest_args(argv)
    except FileNotFoundError as exc:
        print(f"osdconform run: {exc}", file=sys.stderr)
        return 4
    if args.where:
        print(suites_dir()[0])
        return 0
    from ..harness._scaleout import under_torchrun

    if under_torchrun():
        return run_scaleout(passthrough)
    import pytest

    return int(pytest.main(passthrough))


if __name__ == "__main__":
    sys.exit(run_main())
