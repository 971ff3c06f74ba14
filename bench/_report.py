"""What bench_roundtrip.py measures per harness, its targets, and the Markdown it prints.

Why its own module: the measuring (spawning worlds, timing, killing process
groups) and the reporting (tables, ratios against the targets) are separate
jobs; the report only reads `Measurement`s, so it can change without touching
what is timed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TARGET_FLOOR_RATIO = 1.15  # floor_rate / h_rate <=
TARGET_VS_B = 1.5  # h_rate / b_rate >=
TARGET_VS_C = 50.0  # h_rate / c_rate >= (at world 2)
TARGET_VS_C_WORLD = 2
TARGET_OVERHEAD_MS = 5.0  # (1/h - 1/floor) * 1000 <=


@dataclass
class Measurement:
    harness: str
    examples: int = 0
    seconds: float = 0.0  # the timed window
    start_s: float | None = None  # spawn / class start, outside the timed window
    warmup_s: float | None = None
    blocks: list = field(default_factory=list)  # (examples, seconds) per timed block
    note: str = ""

    @property
    def rate(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("nan")

    @property
    def rate_incl_start(self) -> float:
        total = self.seconds + (self.start_s or 0.0) + (self.warmup_s or 0.0)
        return self.examples / total if total > 0 else float("nan")


LABELS = {
    "floor": "(floor) bare warm loop, no dispatch",
    "h": "(h) osdconform WorldPool.run",
    "b": "(b) torch MultiProcContinuousTest",
    "c": "(c) torch MultiProcessTestCase (spawn per test)",
}


def _f(x, digits=2):
    if x is None:
        return "-"
    return f"{x:.{digits}f}"


def world_report(world, scenario, ms: dict[str, Measurement]) -> str:
    floor = ms.get("floor")
    lines = [
        f"### World size {world}",
        "",
        f"Scenario: {scenario.describe().splitlines()[0]}; "
        + "; ".join(scenario.describe().splitlines()[1:3]),
        "",
        "| harness | examples timed | timed (s) | examples/s | ms/example | overhead vs floor (ms/example) "
        "| start (s) | warm-up (s) | examples/s incl. start + warm-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in ("floor", "h", "b", "c"):
        m = ms.get(key)
        if m is None:
            continue
        over = None
        if floor is not None and key != "floor":
            over = (1 / m.rate - 1 / floor.rate) * 1000
        start = m.start_s
        start_txt = _f(start) if start is not None else ("in every example" if key == "c" else "-")
        lines.append(
            f"| {LABELS[key]} | {m.examples} | {_f(m.seconds)} | {_f(m.rate)} | {_f(1000 / m.rate)} "
            f"| {_f(over)} | {start_txt} | {_f(m.warmup_s, 3)} | {_f(m.rate_incl_start)} |"
        )
    lines.append("")
    blocks = []
    for key in ("h", "floor"):
        m = ms.get(key)
        if m is not None and m.blocks:
            blocks.append(
                f"{key} blocks (ABBA order h,floor,floor,h): "
                + ", ".join(f"{k} ex in {s:.2f} s = {k / s:.1f}/s" for k, s in m.blocks)
            )
    c = ms.get("c")
    if c is not None:
        blocks.append("c per example (s): " + ", ".join(f"{s:.2f}" for _, s in c.blocks))
    for b in blocks:
        lines.append(f"- {b}")
    if blocks:
        lines.append("")

    h = ms.get("h")
    rows = []
    if h is not None and floor is not None:
        r = floor.rate / h.rate
        rows.append(("floor_rate / h_rate", _f(r, 3), f"<= {TARGET_FLOOR_RATIO}", r <= TARGET_FLOOR_RATIO))
        over = (1 / h.rate - 1 / floor.rate) * 1000
        rows.append(
            ("dispatch overhead (1/h_rate - 1/floor_rate), ms/example", _f(over, 2),
             f"<= {TARGET_OVERHEAD_MS}", over <= TARGET_OVERHEAD_MS)
        )
    b = ms.get("b")
    if h is not None and b is not None:
        r = h.rate / b.rate
        rows.append(("h_rate / b_rate (h is x times faster than b)", _f(r, 2), f">= {TARGET_VS_B}", r >= TARGET_VS_B))
        if floor is not None:
            rows.append(("floor_rate / b_rate (the most h_rate / b_rate could be, if h were the floor)",
                         _f(floor.rate / b.rate, 2), "(for reference)", None))
    if h is not None and c is not None:
        r = h.rate / c.rate
        if world == TARGET_VS_C_WORLD:
            rows.append(("h_rate / c_rate (h is x times faster than c)", _f(r, 1), f">= {TARGET_VS_C:g}", r >= TARGET_VS_C))
        else:
            rows.append(("h_rate / c_rate (h is x times faster than c)", _f(r, 1), f"(target only at world {TARGET_VS_C_WORLD})", None))
    if rows:
        lines += ["| ratio | value | target | met |", "|---|---:|---|---|"]
        for name, value, target, ok in rows:
            met = "-" if ok is None else ("yes" if ok else "**NO**")
            lines.append(f"| {name} | {value} | {target} | {met} |")
        lines.append("")
    return "\n".join(lines)


def summary_report(results: dict[int, dict[str, Measurement]]) -> str:
    lines = [
        "### Summary (examples/s; targets in the header)",
        "",
        "| world | floor | h | b | c | floor/h (<= 1.15) | overhead ms (<= 5) | h/b (>= 1.5) "
        "| h/c (>= 50 at world 2) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def rate(ms, k):
        return ms[k].rate if k in ms else None

    def mark(ok):
        return "" if ok is None else (" ok" if ok else " **miss**")

    for world, ms in results.items():
        fl, h, b, c = (rate(ms, k) for k in ("floor", "h", "b", "c"))
        cells = [_f(fl), _f(h), _f(b), _f(c)]
        if fl and h:
            r = fl / h
            o = (1 / h - 1 / fl) * 1000
            cells += [f"{r:.3f}{mark(r <= TARGET_FLOOR_RATIO)}", f"{o:.2f}{mark(o <= TARGET_OVERHEAD_MS)}"]
        else:
            cells += ["-", "-"]
        cells.append(f"{h / b:.2f}{mark(h / b >= TARGET_VS_B)}" if h and b else "-")
        if h and c:
            r = h / c
            cells.append(f"{r:.1f}{mark(r >= TARGET_VS_C) if world == TARGET_VS_C_WORLD else ''}")
        else:
            cells.append("-")
        lines.append(f"| {world} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)
