"""The comparison's rows, their mean ± std over seeds, the text table and the report (report.md + figures).

A row is one trained network: ``method``, ``variant``, ``density`` (the target fraction of prunable
weights remaining; for "imp" the level's), ``level`` (IMP's level, else None), ``seed``,
``percent_remaining`` (measured from the masks, in percent), ``test_accuracy_at_early_stop``,
``early_stop_iteration``, ``val_accuracy_at_early_stop``, ``final_test_accuracy`` (fractions) and
``seconds`` (training time of its group, per network). A summary row holds, per method × variant ×
density, ``trials``, ``seeds`` and ``<metric>_mean`` / ``<metric>_std`` (sample std, 0 for one seed).
"""

from pathlib import Path

from supermask import store
from supermask.results import mean_std

METRICS = ("percent_remaining", "test_accuracy_at_early_stop", "early_stop_iteration", "final_test_accuracy")
KEY = ("method", "variant", "density")


def row(cell, percent_remaining, summary, seconds):
    """One network's row (see the module docstring) from its ``Cell`` and ``early_stop.summarize`` summary."""
    return {"method": cell.method, "variant": cell.variant, "density": cell.density, "level": cell.level,
            "seed": cell.seed, "percent_remaining": round(float(percent_remaining), 4),
            "test_accuracy_at_early_stop": summary["test_accuracy_at_early_stop"],
            "early_stop_iteration": summary["early_stop_iteration"],
            "val_accuracy_at_early_stop": summary["val_accuracy_at_early_stop"],
            "final_test_accuracy": summary["final_test_accuracy"], "seconds": round(float(seconds), 3)}


def summarize(rows):
    """Mean ± std over seeds per (method, variant, density), in the rows' order of first appearance."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in KEY), []).append(r)
    out = []
    for key, members in groups.items():
        s = {**dict(zip(KEY, key)), "trials": len(members), "seeds": " ".join(str(r["seed"]) for r in members)}
        for name in METRICS:
            s[f"{name}_mean"], s[f"{name}_std"] = mean_std([r[name] for r in members if r[name] is not None])
        out.append(s)
    return out


def _pct(m, s):
    return "-" if m is None else f"{100 * m:6.2f} ± {100 * s:5.2f}"


def format_summary(summary):
    """The summary as an aligned text table (accuracies in percent)."""
    lines = [f"{'method':<10} {'variant':<8} {'% left':>7} {'n':>2}  {'test acc @ early stop':>20}  "
             f"{'final test acc':>16}  {'es iteration':>13}"]
    for s in summary:
        its = "-" if s["early_stop_iteration_mean"] is None else \
            f"{s['early_stop_iteration_mean']:6.0f} ± {s['early_stop_iteration_std']:4.0f}"
        lines.append(f"{s['method']:<10} {s['variant']:<8} {s['percent_remaining_mean']:7.2f} {s['trials']:>2}  "
                     f"{_pct(s['test_accuracy_at_early_stop_mean'], s['test_accuracy_at_early_stop_std']):>20}  "
                     f"{_pct(s['final_test_accuracy_mean'], s['final_test_accuracy_std']):>16}  {its:>13}")
    return "\n".join(lines)


def write_tables(folder, rows, summary, results_name, summary_name):
    store.write_csv(Path(folder) / results_name, rows)
    store.write_csv(Path(folder) / summary_name, [{k: ("" if v is None else v) for k, v in s.items()}
                                                  for s in summary])


def _pyplot():
    # Lazy: matplotlib is an optional extra that only the figures need (as supermask.report's drawing).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _accuracy_axis(ax, xs):
    ax.set_xscale("log")
    ax.set_xlim(max(xs) * 1.2, min(xs) / 1.2)  # reversed: fewest weights on the right, as in the papers
    ticks = sorted({round(x, 2) for x in xs})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("test accuracy at early stop (%)")
    ax.grid(True, alpha=0.3)


def _errorbar(ax, members, label, style="-o"):
    members = sorted(members, key=lambda s: -s["percent_remaining_mean"])
    xs = [s["percent_remaining_mean"] for s in members]
    ys = [100 * (s["test_accuracy_at_early_stop_mean"] or 0) for s in members]
    es = [100 * (s["test_accuracy_at_early_stop_std"] or 0) for s in members]
    ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, markersize=4, label=label)
    return xs


def write_report(folder, summary, title):
    """``<folder>/report/report.md`` with ``accuracy.png`` (test accuracy vs % remaining per method,
    variant "none", mean ± std error bars, log x) and ``sanity.png`` (one panel per method: each
    variant). Returns the report's path."""
    plt = _pyplot()
    out = Path(folder) / "report"
    out.mkdir(parents=True, exist_ok=True)
    methods = list(dict.fromkeys(s["method"] for s in summary))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    xs = []
    for method in methods:
        members = [s for s in summary if s["method"] == method and s["variant"] == "none"]
        if members:
            xs += _errorbar(ax, members, method)
    if xs:
        _accuracy_axis(ax, xs)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    _save(plt, fig, out / "accuracy.png")
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods), 3.6), squeeze=False)
    for ax, method in zip(axes[0], methods):
        xs = []
        for variant in dict.fromkeys(s["variant"] for s in summary if s["method"] == method):
            xs += _errorbar(ax, [s for s in summary if s["method"] == method and s["variant"] == variant],
                            variant, "-o" if variant == "none" else "--s")
        _accuracy_axis(ax, xs)
        ax.set_title(method, fontsize=10)
        ax.legend(fontsize=7)
    _save(plt, fig, out / "sanity.png")
    table = ["| method | variant | % remaining | seeds | test accuracy @ early stop (%) | final test accuracy (%) |",
             "|---|---|---|---|---|---|"]
    for s in summary:
        table.append(f"| {s['method']} | {s['variant']} | {s['percent_remaining_mean']:.2f} | {s['trials']} | "
                     f"{_pct(s['test_accuracy_at_early_stop_mean'], s['test_accuracy_at_early_stop_std']).strip()} | "
                     f"{_pct(s['final_test_accuracy_mean'], s['final_test_accuracy_std']).strip()} |")
    text = "\n".join([f"# Pruning at initialisation: {title}", "",
                      "Test accuracy (at the iteration of minimum validation loss) vs weights remaining, mean ± "
                      "std over seeds.", "", "![accuracy](accuracy.png)", "",
                      "Sanity checks (Frankle et al. 2021): the method's network (none), its mask shuffled per "
                      "layer, its weights reinitialised, its scores inverted.", "", "![sanity](sanity.png)", "",
                      *table, ""])
    path = out / "report.md"
    with store.atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path


def _save(plt, fig, path):
    fig.tight_layout()
    with store.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
