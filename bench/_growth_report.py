"""The Markdown report and PNG plots of bench_growth.py (docs/cost-growth.md, docs/cost-growth-*.png).

Why its own module: measuring (worlds, ranks) and reporting are separate jobs;
this one reads only the plain dict bench_growth.py collected, so a table or a
verdict can change without re-running anything (``--json`` keeps the data).
The findings at the top of the doc are computed here from the numbers, not
written by hand, so that a regenerated doc cannot contradict its own tables.
The plots are in `_growth_plots`; matplotlib is optional: without it the doc
says so and has tables only.
"""

from __future__ import annotations

import math
import os

#: A segment of a curve grows "faster than linearly" when its log-log slope exceeds this
#: (20 % noise between half-decade points moves a slope by about 0.16).
SUPERLINEAR = 1.2
#: Segments starting below these are not judged: fixed costs and page-size noise rule there.
FLOOR = {"time_s": 0.01, "peak_mib": 1.0, "y": 1e-4}
#: The goal for the reference oracle on the large OSD: time within 2x of torch's, peak no more than torch's.
TIME_GOAL = 2.0
#: Peaks are resident pages: a difference under max(0.1 MiB, 0.5 %) is not counted as "more".
MEM_SLACK_MIB, MEM_SLACK_FRACTION = 0.1, 0.005
MIB = 1024 * 1024


def _ms(s):
    return "-" if s is None else f"{s * 1e3:.3g}" if s < 0.1 else f"{s * 1e3:,.0f}"


def _mib(x):
    return "-" if x is None else f"{x:,.1f}"


def _ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def _r(x):
    return "-" if x is None else f"{x:.2f}"


def slopes(xs, ys):
    """Log-log slope of each segment (None for the first point): 1 is linear, 2 quadratic."""
    out = [None]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        ok = x0 and x1 and y0 and y1 and x1 != x0 and y0 > 0 and y1 > 0
        out.append(math.log(y1 / y0) / math.log(x1 / x0) if ok else None)
    return out


def superlinear_segments(rows, xkey, ykey):
    xs, ys = [r[xkey] for r in rows], [r[ykey] or 0 for r in rows]
    return [(xs[i - 1], xs[i], s) for i, s in enumerate(slopes(xs, ys))
            if s is not None and s > SUPERLINEAR and ys[i - 1] >= FLOOR[ykey]]


def top_decade_slope(rows, xkey, ykey):
    """Slope from the last point back to the first point at most a tenth of its x: the curve's trend at the top."""
    last = rows[-1]
    base = [r for r in rows if r[xkey] <= last[xkey] / 10 and r[ykey]]
    if not base or not last[ykey]:
        return None
    return slopes([base[-1][xkey], last[xkey]], [base[-1][ykey], last[ykey]])[1]


def _segments_text(segs, unit):
    if not segs:
        return f"nowhere (every segment's log-log slope is at most {SUPERLINEAR})"
    return ", ".join(f"{a:,} -> {b:,} {unit} (slope {s:.2f})" for a, b, s in segs)


# -- tables ---------------------------------------------------------------------------------


def rate_table(rows):
    worlds = sorted({r["world"] for r in rows})
    plans = list(dict.fromkeys(r["plan"] for r in rows))
    cell = {(r["plan"], r["world"]): r for r in rows}
    out = ["| plan | " + " | ".join(f"world {w}: examples/s (ms/example)" for w in worlds) + " |",
           "|---|" + "---:|" * len(worlds)]
    for p in plans:
        cells = []
        for w in worlds:
            r = cell.get((p, w))
            cells.append("-" if r is None else f"{r['rate']:.1f} ({1e3 / r['rate']:.1f})")
        out.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def curve_table(rows, xkey):
    s = slopes([r[xkey] for r in rows], [r["time_s"] for r in rows])
    m = slopes([r[xkey] for r in rows], [r["peak_mib"] or 0 for r in rows])
    unit = "parameter" if xkey == "params" else "FQN"
    out = ["| parameters | FQNs | layers x width | time (ms) | time slope | peak RSS added (MiB) | peak slope "
           f"| bytes per {unit} at peak | runs |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r, ts, ms in zip(rows, s, m):
        bpp = None if r["peak_mib"] is None else r["peak_mib"] * MIB / r[xkey]
        out.append(f"| {r['params']:,} | {r['fqns']:,} | {r['layers']} x {r['dims'][1]} | {_ms(r['time_s'])} | "
                   f"{_r(ts)} | {_mib(r['peak_mib'])} | {_r(ms)} | {'-' if bpp is None else f'{bpp:,.0f}'} | "
                   f"{r['runs']} |")
    return "\n".join(out)


def flatten_table(rows, unflatten_max):
    xs = [r["fqns"] for r in rows]
    ref_u = [r["unflatten"].get("reference") for r in rows]
    s = slopes(xs, [u or 0 for u in ref_u])
    out = ["| FQNs | flat keys | flatten: reference (ms) | torch (ms) | ratio | unflatten: reference (ms) "
           "| slope | torch (ms) | ratio |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    last = next(((x, u) for x, u in zip(reversed(xs), reversed(ref_u)) if u), None)
    for r, sl in zip(rows, s):
        f, u = r["flatten"], r["unflatten"]
        ru = u.get("reference")
        if ru is None and last:  # extrapolated with the square of the FQN count
            ru_text = f"~{_ms(last[1] * (r['fqns'] / last[0]) ** 2)} (not run: quadratic, extrapolated)"
            ratio = "-"
        else:
            ru_text, ratio = _ms(ru), _r(_ratio(ru, u["torch"]))
        out.append(f"| {r['fqns']:,} | {r['flat_keys']:,} | {_ms(f['reference'])} | {_ms(f['torch'])} | "
                   f"{_r(_ratio(f['reference'], f['torch']))} | {ru_text} | {_r(sl) if ru else '-'} | "
                   f"{_ms(u['torch'])} | {ratio} |")
    return "\n".join(out)


def verdicts(row):
    """Per operation: (time ratio, peak ratio, time goal met, memory goal met)."""
    out = {}
    for op, sides in row["ops"].items():
        r, t = sides["reference"], sides["torch"]
        tr = _ratio(r["time_s"], t["time_s"])
        pr = _ratio(r["peak_mib"], t["peak_mib"])
        mem_ok = None
        if r["peak_mib"] is not None and t["peak_mib"] is not None:
            mem_ok = r["peak_mib"] <= t["peak_mib"] + max(MEM_SLACK_MIB, MEM_SLACK_FRACTION * t["peak_mib"])
        out[op] = (tr, pr, tr is not None and tr <= TIME_GOAL, mem_ok)
    return out


def compare_table(row):
    v = verdicts(row)
    out = ["| operation | reference (ms) | torch (ms) | time ratio ref/torch | reference peak (MiB) "
           "| torch peak (MiB) | peak ratio | within 2x time | peak <= torch |",
           "|---|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
    for op, sides in row["ops"].items():
        r, t = sides["reference"], sides["torch"]
        tr, pr, tok, mok = v[op]
        out.append(f"| {op} | {_ms(r['time_s'])} | {_ms(t['time_s'])} | **{_r(tr)}** | {_mib(r['peak_mib'])} | "
                   f"{_mib(t['peak_mib'])} | {_r(pr)} | {'yes' if tok else 'NO'} | "
                   f"{'-' if mok is None else 'yes' if mok else 'NO'} |")
    return "\n".join(out)


# -- the document ---------------------------------------------------------------------------


def _img(files, name, alt):
    return [f"![{alt}]({files[name]})", ""] if name in files else []


def _per_unit(rows, xkey, ykey):
    """Local log-log slopes of `ykey` against `xkey` as text: '1->2: 1.30, 2->4: 1.10'."""
    xs, ys = [r[xkey] for r in rows], [r[ykey] for r in rows]
    return ", ".join(f"{a}->{b}: {s:.2f}" for a, b, s in zip(xs, xs[1:], slopes(xs, ys)[1:]) if s is not None)


def in_short(data):
    """Two sentences: what grows faster than linearly, and whether the goal holds on the largest OSD."""
    fast, linear = [], []
    rates = data.get("rates") or []
    for plan in dict.fromkeys(r["plan"] for r in rates):
        rows = sorted((r for r in rates if r["plan"] == plan), key=lambda r: r["world"])
        if len(rows) > 1:
            sl = slopes([rows[0]["world"], rows[-1]["world"]], [1 / rows[0]["rate"], 1 / rows[-1]["rate"]])[1]
            what = f"ms/example against world size under plan {plan} (slope {sl:.2f}, world {rows[0]['world']}->{rows[-1]['world']})"
            (fast if sl > SUPERLINEAR else linear).append(what)
    for key, xkey, unit in (("size", "params", "parameters"), ("fqns", "fqns", "FQNs")):
        for ykey, what in (("time_s", "time"), ("peak_mib", "peak memory")):
            top = top_decade_slope(data.get(key) or [], xkey, ykey) if data.get(key) else None
            if top is not None:
                (fast if top > SUPERLINEAR else linear).append(f"round-trip {what} against {unit} (slope {top:.2f})")
    fl = [{"x": r["fqns"], "y": r["unflatten"]["reference"]} for r in data.get("flatten") or []
          if r["unflatten"].get("reference")]
    top = top_decade_slope(fl, "x", "y") if fl else None
    if top is not None:
        (fast if top > SUPERLINEAR else linear).append(f"the reference's unflatten against FQNs (slope {top:.2f})")
    out = [f"- **In short.** Faster than linearly (log-log slope above {SUPERLINEAR}): {'; '.join(fast) or 'nothing measured'}. "
           f"At most linearly (slope up to {SUPERLINEAR}): {'; '.join(linear) or 'nothing measured'}."]
    large = max(data.get("compare") or [], key=lambda r: r["osd_mib"], default=None)
    if large:
        v = verdicts(large)
        ok_t = [op for op, x in v.items() if x[2]]
        bad_t = [f"{op} ({x[0]:.1f}x)" for op, x in v.items() if not x[2]]
        ok_m = [op for op, x in v.items() if x[3]]
        bad_m = [f"{op} ({x[1]:.2f}x)" for op, x in v.items() if x[3] is False]
        out.append(f"- **The goal on the large OSD** ({large['label']}, {large['osd_mib']:.1f} MiB of Adam state): "
                   f"the reference is within 2x of torch's time in {', '.join(ok_t) or 'nothing'}"
                   + (f", not in {', '.join(bad_t)}" if bad_t else "")
                   + f"; its peak memory is no more than torch's in {', '.join(ok_m) or 'nothing'}"
                   + (f", more in {', '.join(bad_m)}" if bad_m else "") + ". Where and why: below.")
    return out


def findings(data):
    """The doc's findings, computed from the numbers: growth verdicts, then the oracle's goal."""
    lines = in_short(data)
    if data.get("rates"):
        rates = data["rates"]
        wmin, wmax = min(r["world"] for r in rates), max(r["world"] for r in rates)
        w1 = {r["plan"]: r["rate"] for r in rates if r["world"] == wmin}
        per = ", ".join(f"{r['plan']} {w1[r['plan']] / r['rate']:.1f}x" for r in rates if r["world"] == wmax)
        sl = "; ".join(f"{p}: {_per_unit([dict(r, ms=1 / r['rate']) for r in rates if r['plan'] == p], 'world', 'ms')}"
                       for p in w1)
        lines.append(f"- **Rate against world size**: from world {wmin} to world {wmax} the time per round-trip "
                     f"example grows by {per}: faster than the world size wherever the log-log slope of ms/example "
                     f"against world size is above 1 ({sl}). This machine has {data['cores']} cores, so worlds above "
                     f"{data['cores']} also wait for cores.")
    for key, xkey, unit in (("size", "params", "parameters"), ("fqns", "fqns", "FQNs")):
        if data.get(key):
            rows = data[key]
            lo, hi = rows[0], rows[-1]
            verdict = []
            for ykey, what in (("time_s", "time"), ("peak_mib", "peak memory")):
                top = top_decade_slope(rows, xkey, ykey)
                segs = superlinear_segments(rows, xkey, ykey)
                trend = ("faster than linearly" if top is not None and top > SUPERLINEAR else "at most linearly")
                text = f"{what.capitalize()} grows {trend} over the top decade (slope {_r(top)})"
                if segs:
                    text += "; single segments above " + f"{SUPERLINEAR}: {_segments_text(segs, unit)}"
                    if top is not None and top <= SUPERLINEAR:
                        text += (" (against an at most linear trend over the decade; on this shared machine a point "
                                 "measured once moves by tens of percent between runs: see the runs column)")
                verdict.append(text)
            lines.append(f"- **Round trip against {unit}** ({lo[xkey]:,} -> {hi[xkey]:,}; plan {lo['plan']}, world "
                         f"{lo['world']}): {_ms(lo['time_s'])} -> {_ms(hi['time_s'])} ms, peak {_mib(lo['peak_mib'])} "
                         f"-> {_mib(hi['peak_mib'])} MiB. " + ". ".join(verdict) + ".")
    if data.get("flatten"):
        fl = [r for r in data["flatten"] if r["unflatten"].get("reference")]
        pts = [{"x": r["fqns"], "y": r["unflatten"]["reference"]} for r in fl]
        if fl:
            last = fl[-1]
            ratio = last["unflatten"]["reference"] / last["unflatten"]["torch"]
            slope = top_decade_slope(pts, "x", "y")
            how = "linearly with" if slope <= 1.2 else "with the square of" if slope >= 1.8 else "faster than linearly with"
            lines.append(f"- **The reference's unflatten grows {how} the FQN count** (slope over the top "
                         f"decade {_r(slope)}; segments: {_per_unit(pts, 'x', 'y')}): at "
                         f"{last['fqns']:,} FQNs it takes {_ms(last['unflatten']['reference'])} ms against torch's "
                         f"{_ms(last['unflatten']['torch'])} ms ({ratio:,.0f}x). Its flatten, and torch's both, are "
                         "linear.")
    large = max(data.get("compare", []), key=lambda r: r["osd_mib"], default=None)
    for row in data.get("compare", []):
        v = verdicts(row)
        bad_t = [op for op, x in v.items() if not x[2]]
        bad_m = [op for op, x in v.items() if x[3] is False]
        parts = "; ".join(f"{op} {_r(x[0])}x time" + (f", {_r(x[1])}x peak" if x[1] is not None else "")
                          for op, x in v.items())
        goal = ("**goal met**" if not bad_t and not bad_m else
                "**goal not met**: " + ", ".join(
                    ([f"over 2x torch's time in {', '.join(bad_t)}"] if bad_t else [])
                    + ([f"more peak memory than torch in {', '.join(bad_m)}"] if bad_m else [])))
        which = f"the large OSD ({row['label']})" if row is large else row["label"]
        lines.append(f"- **Reference oracle vs torch, {which}**: {row['osd_mib']:.1f} MiB of Adam state, "
                     f"{row['fqns']:,} FQNs, world {row['world']}: {goal}. Ratios reference/torch: {parts}.")
    return lines


def causes(data):
    """Where the oracle misses the goal, and why: code facts, with the measured sizes that confirm them."""
    lines = []
    rows = data.get("compare", [])
    slow = [r for r in rows if "unflatten" in r["ops"] and not verdicts(r)["unflatten"][2]]
    if slow:
        worst = max(slow, key=lambda r: verdicts(r)["unflatten"][0])
        least = min(slow, key=lambda r: r["fqns"])
        few = least["ops"]["unflatten"]
        lines += [f"- **Time: `unflatten` in `osdconform/reference/_flatten.py`** ({_r(verdicts(worst)['unflatten'][0])}x "
                  f"torch at {worst['fqns']:,} FQNs; {_ms(few['reference']['time_s'])} ms against torch's "
                  f"{_ms(few['torch']['time_s'])} ms at {least['fqns']:,} FQNs). It grows linearly with the keys "
                  "(section 3's slope); it used to be quadratic, `_longest_prefix` scanning every FQN for every key, "
                  "until it looked each key's dot-prefixes up in a set. What is left is a constant factor of plain "
                  "Python per key (splitting it, nesting its value) and a check torch does not make: the oracle "
                  "compares every parameter's copy of its group's hyperparameters (`_same_hparams`), where torch "
                  "reads the first parameter's only. Kept: that check is how the oracle catches a flat OSD whose "
                  "group entries disagree. It matters only for the flat form (`StateOptions(flatten=True)`), "
                  "milliseconds per thousand parameters."]
    for row in sorted(rows, key=lambda r: -r["osd_mib"]):  # the largest OSD that shows it
        v = verdicts(row).get("gather (full OSD)")
        if v is None or v[3] is not False or not row.get("largest_tensor_mib"):
            continue
        big, held = row["largest_tensor_mib"], row["osd_mib"] - row["largest_tensor_mib"]
        r_peak, t_peak = row["ops"]["gather (full OSD)"]["reference"]["peak_mib"], row["ops"]["gather (full OSD)"]["torch"]["peak_mib"]
        lines += [f"- **Memory: `_all_gather_dim` in `osdconform/reference/_dtensor.py`** ({row['label']}: "
                  f"{r_peak:.1f} MiB against torch's {t_peak:.1f} MiB, {r_peak - t_peak:+.1f} MiB). The peak comes at "
                  f"the last big tensor, with the rest of the OSD ({held:.1f} MiB) already gathered: the reference "
                  f"then holds {(r_peak - held) / big:.2f}x that tensor ({big:.1f} MiB) on top, torch "
                  f"{(t_peak - held) / big:.2f}x. `_all_gather_dim` copies the local piece into a zero-padded buffer "
                  "(`new_zeros` + `copy_`) even when every piece has the same size and nothing needs padding, and "
                  "keeps that copy, the receive buffers (one whole tensor) and `torch.cat`'s result (another) alive "
                  f"together: (2 + 1/W)x, here {2 + 1 / row['world']:.2f}x. A fix (not made here): send the piece "
                  "itself when it needs no padding, and gather into one preallocated tensor narrowed per chunk "
                  "instead of a list joined by `torch.cat`."]
        break
    size = data.get("size")
    if size and size[-1]["peak_mib"]:
        top = size[-1]
        bpp = top["peak_mib"] * MIB / top["params"]
        lines += [f"- **Round-trip memory** at {top['params']:,} parameters: {bpp:.0f} bytes per parameter per rank "
                  f"(world {top['world']}). A full Adam OSD is 8 bytes per parameter on every rank (two fp32 moments, "
                  "whole), and `properties.roundtrip` holds four at once until its compare (the backend's get before "
                  "and after the set, and the reference's gathers of the source and the loaded optimizer): 32 bytes, "
                  "most of the rest being both workloads' shards of parameters, gradients and moments."]
    return lines


def write(data, out_dir) -> tuple[str, str, str | None]:
    """Write the plots and cost-growth.md into `out_dir`; return (the doc's path, its text, why no plots or None)."""
    import _growth_plots

    files, why_not = _growth_plots.plots(data, out_dir)
    L = ["# Cost growth of osdconform", "",
         "Regenerate the doc and its plots (from the repository root; matplotlib is needed for the plots only):",
         "", "```sh", data["command"], "```", "",
         f"Generated by that command on {data['date']}: torch {data['torch']}, Python {data['python']}, "
         f"{data['cores']} cores, load average {data['load_start']} at the start and {data['load_end']} at the end "
         f"(other jobs shared the machine), {data['wall_s']:.0f} s of measurements. "
         "`bench/bench_growth.py`'s docstring says what each part times; how memory is measured is at the end.", ""]
    if why_not:
        L += [f"**No plots:** {why_not}.", ""]
    L += ["## Findings", "", *findings(data), ""]
    why = causes(data)
    if why:
        L += ["### Where and why", "", *why, ""]
    if data.get("rates"):
        L += ["## 1. Round-trip examples/s per world size and plan", "",
              "`WorldPool().run(W, properties.roundtrip, scenario, \"reference\", StateOptions())` on "
              "bench_roundtrip's scenario (MLP 5->3->2 with biases, Adam, 1 step, full OSD) with each plan; one "
              "untimed warm-up example per cell, every summary checked.", "",
              rate_table(data["rates"]), "", *_img(files, "rate", "examples/s per world size")]
    for key, xkey, title in (("size", "params", "model size"), ("fqns", "fqns", "parameter count (FQNs)")):
        if data.get(key):
            r0 = data[key][0]
            L += [f"## {2 if key == 'size' else 3}. One round trip against {title}", "",
                  f"Plan {r0['plan']}, world {r0['world']}, Adam, 1 step, full OSD, backend reference; each point in "
                  "a fresh world. *Time*: one `properties.roundtrip` (build, train, get, gather, build fresh, set, "
                  "get, gather, compare), slowest rank, median of the runs. *Peak*: resident memory the round trip "
                  "added at its peak, max over ranks. *Slope*: log-log slope from the previous point (1 = linear).",
                  "", curve_table(data[key], xkey), "", *_img(files, key, f"round trip vs {title}")]
    if data.get("flatten"):
        L += ["Flatten / unflatten of the same OSDs (plan none, world 1; dict work only, seconds per call):", "",
              flatten_table(data["flatten"], data["unflatten_max"]), ""]
    if data.get("compare"):
        L += ["## 4. The reference oracle against torch's state-dict APIs", "",
              "One FSDP2 workload per case (Adam, 1 step), each operation measured on the same live optimizer, "
              "reference and torch alternating which goes first (ABBA...); times are medians, peaks maxima. *gather*: `reference.full_osd` vs "
              "`get_optimizer_state_dict(full_state_dict=True)`; *load*: `reference.load_osd` vs "
              "`set_optimizer_state_dict(full_state_dict=True)` of the OSD each side gathered; *gather, flattened*: "
              "`reference.flatten(full_osd(...))` vs the `flatten_optimizer_state_dict=True` option; *flatten* / "
              "*unflatten*: `reference.flatten` / `unflatten` vs torch's `_flatten_optim_state_dict` / "
              "`_unflatten_optim_state_dict`, seconds per call (no peak: they copy no tensors). torch's set of a "
              "*full, flattened* OSD raises KeyError on torch 2.13 (expected_failures/torch-dsd.txt, "
              "reproducer `torch_dsd_full_flatten_set_keyerror.py`), so there is no flattened load.", ""]
        for row in data["compare"]:
            same = "the two gathered OSDs are equal" if row["same_osd"] else f"the OSDs DIFFER: {row['difference']}"
            L += [f"### {row['label']}: {row['params']:,} parameters, {row['fqns']:,} FQNs, "
                  f"{row['osd_mib']:.1f} MiB of state, {row['flat_keys']:,} flat keys", "",
                  f"World {row['world']}; {same}.", "", compare_table(row), ""]
        L += _img(files, "vs-torch", "reference / torch ratios")
    L += ["## How memory is measured", "",
          "Per rank, inside the rank: before the operation the kernel's resident high-water mark (`VmHWM`) is "
          "reset to the current resident size (`echo 5 > /proc/self/clear_refs`); the peak is `VmHWM` after the "
          "operation minus `VmRSS` before it, so it counts what the operation added at its worst moment, including "
          "a result it returns. The ranks pin glibc's mmap threshold at 64 KiB (`mallopt`), so every tensor of "
          "64 KiB or more is its own mapping and freed memory leaves the process; otherwise glibc keeps freed "
          "blocks and a later operation's peak could hide in them. `tracemalloc` is not used: it cannot see "
          "tensor storage. Each curve point and each comparison case runs in a fresh world.", ""]
    path = os.path.join(out_dir, "cost-growth.md")
    text = "\n".join(L)
    with open(path, "w") as f:
        f.write(text)
    return path, text, why_not
