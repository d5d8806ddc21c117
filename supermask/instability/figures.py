"""The instability run's figures, as in Frankle et al. (2020): error vs alpha (one line per start,
mean over seeds) and instability vs k (or vs % of weights remaining for a lottery experiment's levels),
with the standard deviation over seeds as error bars."""

from pathlib import Path

import numpy as np

from supermask.instability.core import STABLE_BELOW

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def pyplot():
    # Lazy: matplotlib is an optional extra (``supermask[report]``) that only the figures need, so the
    # analysis runs and writes its tables without it.
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _label(record):
    return f"k={record['k']}" if record["level"] is None else f"level {record['level']} ({record['remaining']:.1f}%)"


def error_vs_alpha(records, split, folder):
    """``error_vs_alpha_<split>.png``: the mean error over seeds at each alpha, one line per start."""
    plt = pyplot()
    groups = {}
    for r in records:
        if split in r["splits"]:
            groups.setdefault((r["level"], r["k"]), []).append(r)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, group in enumerate(groups.values()):
        errors = np.mean([g["splits"][split]["errors"] for g in group], axis=0)
        ax.plot(group[0]["alphas"], errors, color=PALETTE[i % len(PALETTE)], label=_label(group[0]))
    ax.set_xlabel("interpolation α")
    ax.set_ylabel(f"{split} error (%)")
    ax.set_title(f"Error on the linear path ({split})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    name = f"error_vs_alpha_{split}.png"
    fig.tight_layout()
    fig.savefig(Path(folder) / name, dpi=120)
    plt.close(fig)
    return name


def instability_plot(summary, splits, folder):
    """``instability.png``: mean instability ± std over seeds vs k (symlog x axis), or vs % of weights
    remaining (log x, reversed, as the lottery papers draw levels)."""
    plt = pyplot()
    lottery = summary[0]["level"] is not None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, split in enumerate(splits):
        x = [r["remaining"] if lottery else r["k"] for r in summary]
        y = [r[f"instability_{split}"] for r in summary]
        err = [r[f"instability_{split}_std"] for r in summary]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=PALETTE[i], label=split)
    ax.axhline(STABLE_BELOW, color="grey", linestyle=":", linewidth=1, label=f"{STABLE_BELOW:g} pp")
    if lottery:
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
    else:
        lin = max(1, min([r["k"] for r in summary if r["k"] > 0], default=1))
        ax.set_xscale("symlog", linthresh=lin)
        ax.set_xlim(-0.5 * lin, 2 * max(lin, max(r["k"] for r in summary)))
        ax.set_xlabel("k (iteration the copies split off)")
    ax.set_ylabel("instability (percentage points)")
    ax.set_title("Instability (max error on the path − mean of the endpoints)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(folder) / "instability.png", dpi=120)
    plt.close(fig)
    return "instability.png"


def draw(records, summary, folder):
    """Every figure of a run into ``folder``; returns their file names (none without points)."""
    if not records:
        return []
    Path(folder).mkdir(parents=True, exist_ok=True)
    splits = list(records[0]["splits"])
    return [error_vs_alpha(records, split, folder) for split in splits] + [instability_plot(summary, splits, folder)]
