"""The PNG plots of bench_growth.py (docs/cost-growth-*.png), from the data dict it collected.

Why its own module: matplotlib is not a dependency of osdconform; everything
that needs it is here, imported only when plotting, so a machine without it
still gets the Markdown tables (`plots` says why there are no plots).
"""

from __future__ import annotations

import os

from _growth_report import TIME_GOAL, verdicts


def plots(data, out_dir):
    """Write the PNGs; return ({name: file name}, None) or ({}, why there are none)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return {}, f"matplotlib is not installed ({exc}); `python -m pip install matplotlib` for the plots"
    files = {}

    def save(fig, name):
        fig.tight_layout()
        fname = f"cost-growth-{name}.png"
        fig.savefig(os.path.join(out_dir, fname), dpi=100)
        plt.close(fig)
        files[name] = fname

    if data.get("rates"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for plan in dict.fromkeys(r["plan"] for r in data["rates"]):
            rows = [r for r in data["rates"] if r["plan"] == plan]
            ax.plot([r["world"] for r in rows], [r["rate"] for r in rows], "o-", label=plan)
        ax.set(xlabel="world size", ylabel="round-trip examples/s", title="Warm WorldPool round trips")
        ax.set_xticks(sorted({r["world"] for r in data["rates"]}))
        ax.grid(alpha=0.3)
        ax.legend()
        save(fig, "rate")
    for key, xkey, xlabel in (("size", "params", "parameters (8 FQNs)"), ("fqns", "fqns", "FQNs (~10 parameters each)")):
        rows = data.get(key)
        if not rows:
            continue
        panels = 3 if key == "fqns" and data.get("flatten") else 2
        fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
        xs = [r[xkey] for r in rows]
        for ax, ykey, ylabel in ((axes[0], "time_s", "one round trip (s)"), (axes[1], "peak_mib", "peak RSS added (MiB)")):
            ys = [r[ykey] or float("nan") for r in rows]
            ax.loglog(xs, ys, "o-", label="measured")
            ax.loglog(xs, [ys[-1] * x / xs[-1] for x in xs], ":", color="gray", label="linear (through last point)")
            ax.set(xlabel=xlabel, ylabel=ylabel, title=f"round trip, plan {rows[0]['plan']}, world {rows[0]['world']}")
            ax.grid(alpha=0.3, which="both")
            ax.legend()
        if panels == 3:
            ax = axes[2]
            fl = data["flatten"]
            fx = [r["fqns"] for r in fl]
            for op, style in (("flatten", "-"), ("unflatten", "--")):
                for side, color in (("reference", "C0"), ("torch", "C1")):
                    pts = [(x, r[op].get(side)) for x, r in zip(fx, fl) if r[op].get(side)]
                    if pts:
                        ax.loglog(*zip(*pts), "o" + style, color=color, label=f"{op} ({side})")
            ref_u = [(x, r["unflatten"]["reference"]) for x, r in zip(fx, fl) if r["unflatten"].get("reference")]
            if ref_u:
                (xl, yl) = ref_u[-1]
                ax.loglog(fx, [yl * (x / xl) ** 2 for x in fx], ":", color="gray", label="quadratic")
            ax.set(xlabel=xlabel, ylabel="seconds per call", title="flatten / unflatten (plan none, world 1)")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
        save(fig, key)
    if data.get("compare"):
        _compare_plot(plt, data["compare"], save)
    return files, None


def _compare_plot(plt, rows, save):
    """Bars of reference/torch: time (log scale, all operations) and peak memory (operations that have one)."""
    ops = list(rows[0]["ops"])
    mem_ops = [op for op in ops if any(verdicts(r)[op][1] is not None for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [len(ops), max(1, len(mem_ops))]})
    width = 0.8 / len(rows)
    for ax, names, k, goal, ylabel, log in ((axes[0], ops, 0, TIME_GOAL, "time: reference / torch", True),
                                            (axes[1], mem_ops, 1, 1.0, "peak memory: reference / torch", False)):
        for i, row in enumerate(rows):
            v = verdicts(row)
            ax.bar([j + i * width for j in range(len(names))], [v[op][k] or 0 for op in names], width,
                   label=row["label"])
        ax.axhline(goal, color="red", linestyle="--", linewidth=1, label=f"goal <= {goal:g}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
        ax.set_xticklabels(names, rotation=20, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y", which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"Reference oracle vs torch (FSDP2, world {rows[0]['world']}, Adam)")
    save(fig, "vs-torch")
