"""The kill matrix: the suites' ``ci`` profile against every fault, one row each.

    python tests/faults/kill_matrix.py [--space full|core] [--suites FILE ...] [--only NAME ...] [--logs DIR]
        [-o docs/kill-matrix.md]

For each fault of the corpus (`faults.CORPUS`) and each seeded fault of
``tests/helpers/faulty_backends.py`` it runs ``pytest suites -x`` in a
subprocess, as a user would, with the fault as ``--osd-backend`` and the
expected failures shipped for the backend it wraps (so a known torch defect is
an expected failure there, as in the conformance matrix), and records: caught
or survived; the first failing test and what its failure says (property and
check); the examples Hypothesis ran up to and including the first failing one
and the seconds to it (from Hypothesis's observability log of the run); the
seconds to the shrunk
report (wall time of the run, which stops at the first failure); and the size
of the shrunk scenario (world size, plan, model nodes, optimizers, steps).

It writes the table as Markdown (``-o``) and the rows as JSON next to it, and
exits 1 if any fault survived.  The whole corpus takes tens of minutes on two
cores, so it runs outside CI; CI runs a subset (tests/nocover/test_suite_catches_faults.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

from faults import CORPUS  # noqa: E402
from helpers import faulty_backends  # noqa: E402


@dataclass
class Row:
    fault: str
    module: str
    over: str
    reports: str
    caught: bool
    outcome: str  # caught / survived / error (exit code)
    test: str = ""
    check: str = ""
    examples: int = 0  # run up to and including the first failing one
    to_first: float = 0.0  # seconds from the run's start to the first failing example
    seconds: float = 0.0  # of the whole run: to the shrunk report
    scenario: str = ""


def seeded_faults() -> list[type]:
    return [
        obj for name, obj in vars(faulty_backends).items()
        if isinstance(obj, type) and obj.__module__ == faulty_backends.__name__ and hasattr(obj, "name")
    ]


def command(fault: type, module: str, space: str, timeout: float, scratch: str,
            suites: tuple[str, ...] = ()) -> list[str]:
    over = getattr(fault, "over", "reference")
    targets = [str(ROOT / "suites" / s) for s in suites] or [str(ROOT / "suites")]
    cmd = [
        sys.executable, "-m", "pytest", *targets, "-x", "-p", "no:cacheprovider",
        "-p", "no:randomly", "-q", "-rf", "--tb=short", f"--osd-repro-dir={scratch}",
        "--hypothesis-profile=ci", f"--osd-space={space}", f"--osd-timeout={timeout}",
        f"--osd-backend={module}:{fault.__name__}",
    ]
    if over != "reference":
        shipped = ROOT / "osdconform" / "expected_failures" / f"{over}.txt"
        if shipped.exists():
            cmd.append(f"--osd-xfails={shipped}")
    return cmd


def first_failure(observed: Path, started: float) -> tuple[int, float]:
    """(examples run up to and including the first failing one, seconds from the run's
    start to it), from Hypothesis's observability log of the run (``test_case`` lines,
    in the order they ran; the generate and target phases count as examples)."""
    count = 0
    for path in sorted(observed.glob("observed/*testcases*.jsonl")):
        for line in path.read_text().splitlines():
            case = json.loads(line)
            if case.get("type") != "test_case":
                continue
            count += 1
            if case.get("status") == "failed":
                return count, round(case.get("run_start", started) - started, 1)
    return 0, 0.0


def failure_check(out: str) -> tuple[str, str]:
    """(test id, what its failure says) of the first FAILED line of the short summary."""
    m = re.search(r"^FAILED (\S+)(?: - (.*))?$", out, re.M)
    if not m:
        return "", ""
    test = m.group(1).replace("suites/", "")
    # An ExceptionGroup (Hypothesis found several distinct failures) prints each one
    # behind "| "; every distinct one is named, in the order printed.
    said = re.findall(r"^\s*(?:E\s+)?(?:\|\s*)*(?:[\w.]+\.)?(PropertyViolation|RankHang|RankError|OSDMismatch|AssertionError)"
                      r": (.+)$", out, re.M)
    distinct = list(dict.fromkeys(text.strip() for _, text in said))
    if len(distinct) > 1:
        check = f"{len(distinct)} distinct: " + "; ".join(d[:100] for d in distinct)
    else:
        check = distinct[0] if distinct else (m.group(2) or "")
    return test, check[:400]


def scenario_size(out: str) -> str:
    m = re.search(r"scenario \([^)]*\):\n(?:E\s+)?world size (\d+), plan (\S+)\n(.*?)as code:", out, re.S)
    if not m:
        return ""
    body = m.group(3)
    nodes = len(re.findall(r"^E\s{3,}\S+: ", body, re.M))
    optimizers = len(re.findall(r"^E\s+optimizer", body, re.M)) or body.count("optimizer")
    steps = re.search(r"(\d+) training step", body)
    return (f"world {m.group(1)}, {m.group(2)}, {nodes} node(s), {optimizers} optimizer(s), "
            f"{steps.group(1) if steps else '?'} step(s)")


def run_one(fault: type, module: str, space: str, timeout: float, suites: tuple[str, ...] = (),
            logs: Path | None = None) -> Row:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory(prefix="osdconform-kill-") as scratch:
        # Hypothesis's observability log says which example failed first, and when.
        env.update(HYPOTHESIS_EXPERIMENTAL_OBSERVABILITY="1", HYPOTHESIS_STORAGE_DIRECTORY=scratch)
        started = time.time()
        proc = subprocess.run(command(fault, module, space, timeout, scratch, suites), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=3600)
        seconds = time.time() - started
        examples, to_first = first_failure(Path(scratch), started)
    out = proc.stdout + proc.stderr
    if logs is not None:  # the whole pytest output, for a row whose summary is not enough
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{fault.__name__}.log").write_text(out)
    outcome = {0: "survived", 1: "caught"}.get(proc.returncode, f"error (exit {proc.returncode})")
    test, check = failure_check(out) if proc.returncode == 1 else ("", "")
    return Row(
        fault=fault.__name__, module=module, over=getattr(fault, "over", "reference"),
        reports=", ".join(getattr(fault, "reports", ())) or "seeded (one per property)",
        caught=proc.returncode == 1, outcome=outcome, test=test, check=check,
        examples=examples, to_first=to_first,
        seconds=round(seconds, 1), scenario=scenario_size(out) if proc.returncode == 1 else "",
    )


def render(rows: list[Row], space: str, cmdline: str, suites: tuple[str, ...] = ()) -> str:
    caught = [r for r in rows if r.caught]
    secs = [r.to_first for r in caught]
    lines = [
        "# Kill matrix",
        "",
        f"The `ci` profile of the `{space}` space against every fault"
        f"{' (suites ' + ', '.join(suites) + ')' if suites else ''}; generated by `{cmdline}`.",
        "Each fault runs `pytest suites -x` with the expected failures shipped for the backend it wraps.",
        "",
        f"**{len(caught)} of {len(rows)} caught** ({100 * len(caught) / max(1, len(rows)):.0f} %); "
        f"median {statistics.median(secs) if secs else 0:.0f} s and "
        f"{statistics.median([r.examples for r in caught]) if caught else 0:.0f} examples to the first failing example "
        f"(median {statistics.median([r.seconds for r in caught]) if caught else 0:.0f} s to the shrunk report).",
        "",
        "| fault | over | report | outcome | first failing test | what it says | examples to it | s to it | s to report | shrunk to |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        check = r.check.replace("|", "\\|")
        lines.append(f"| `{r.fault}` | {r.over} | {r.reports} | {r.outcome} | `{r.test}` | {check} | "
                     f"{r.examples or ''} | {r.to_first if r.caught else ''} | {r.seconds} | {r.scenario} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", choices=("core", "full"), default="full", help="the built-in backends' default, full")
    parser.add_argument("--only", nargs="*", help="fault class names")
    parser.add_argument("--no-seeded", action="store_true", help="the corpus only")
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--suites", nargs="*", default=(), help="suite files (default: all of suites/)")
    parser.add_argument("-o", "--output", help="Markdown file (rows as JSON beside it)")
    parser.add_argument("--logs", type=Path, help="a folder for each fault's whole pytest output")
    args = parser.parse_args(argv)
    faults = [(f, "faults") for f in CORPUS]
    if not args.no_seeded:
        faults += [(f, "helpers.faulty_backends") for f in seeded_faults()]
    if args.only:
        faults = [(f, m) for f, m in faults if f.__name__ in args.only]
    rows = []
    for fault, module in faults:
        row = run_one(fault, module, args.space, args.timeout, tuple(args.suites), args.logs)
        rows.append(row)
        print(f"{row.fault:40} {row.outcome:10} {row.examples:4} ex {row.to_first:6.1f} s {row.seconds:7.1f} s  "
              f"{row.test}  {row.check[:80]}",
              flush=True)
    cmdline = "python tests/faults/kill_matrix.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(rows, args.space, cmdline.strip(), tuple(args.suites))
    if args.output:
        Path(args.output).write_text(text)
        Path(args.output).with_suffix(".json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    else:
        print(text)
    return 0 if all(r.caught for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
