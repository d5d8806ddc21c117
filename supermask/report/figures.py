"""The report's figures: lottery experiments (accuracy and early-stop iteration vs % remaining,
training curves of a few levels), single runs, groups of runs, and init sweeps. Each function
writes its files into a folder and returns their names."""

import numpy as np

from supermask import paths, results
from supermask.report import drawing
from supermask.report.labels import early_stop_text, labels_of, lottery_title, run_label, stems_of


def lottery_figures(experiments, folder, curves=True, subject=None, fmt="png"):
    """Write the lottery figures of ``experiments`` (a list of ``results.Experiment``) into
    ``folder`` as ``fmt`` files (with ``curves``, also each experiment's training curves);
    ``subject`` names them in the titles (default: the experiment's label, or their count);
    returns the file names."""
    plt = drawing.pyplot()
    drawing.check_format(fmt)
    names = []
    several = len(experiments) > 1
    labels = labels_of(experiments)
    stops = " / ".join(sorted({early_stop_text(e.hparams, short=True) for e in experiments}))
    for key, ylabel, scale, name in (
            ("test_accuracy_at_early_stop", "test accuracy at early stop (%)", 100, "accuracy_vs_remaining"),
            ("early_stop_iteration", f"early-stop iteration ({stops})", 1, "early_stop_vs_remaining")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        entries = []
        for i, (exp, label) in enumerate(zip(experiments, labels)):
            rows = exp.summary
            x = [r["percent_remaining_mean"] for r in rows]
            texts = {False: label, True: f"{label}, random reinit"} if several else \
                {False: "ticket", True: "random-reinit control"}
            for control in (False, True):
                k = f"control_{key}" if control else key
                pts = [(xi, r[f"{k}_mean"] * scale, r[f"{k}_std"] * scale)
                       for xi, r in zip(x, rows) if r[f"{k}_mean"] is not None]
                if not pts:
                    continue
                xs, ys, es = zip(*pts)
                handle = ax.errorbar(xs, ys, yerr=es, color=drawing.colour(i), linestyle="--" if control else "-",
                                     marker="o" if not control else "s", markersize=4, capsize=3)
                entries.append((handle, texts[control]))
        drawing.remaining_axis(ax, [r["percent_remaining_mean"] for e in experiments for r in e.summary])
        ax.set_ylabel(ylabel)
        drawing.title(ax, lottery_title(experiments, "test accuracy" if scale == 100 else "early stopping", subject))
        drawing.legend(ax, entries)
        names.append(drawing.save(fig, folder, f"{name}.{fmt}"))
    for exp, label, stem in zip(experiments, labels, stems_of(experiments)) if curves else ():
        names.append(training_curves(exp, folder, f"training_curves_{stem}.{fmt}", label=label))
    return names


def selected_levels(levels, count=4):
    """About ``count`` levels spread from the first to the last (always both)."""
    levels = sorted(levels)
    if len(levels) <= count:
        return levels
    picks = {levels[round(i * (len(levels) - 1) / (count - 1))] for i in range(count)}
    return sorted(picks)


def training_curves(exp, folder, name, levels=None, label=None):
    """Test accuracy vs iteration for a few levels of one experiment (mean over trials), titled
    by ``label`` (default: the experiment's own)."""
    plt = drawing.pyplot()
    rows = exp.summary
    remaining = {r["level"]: r["percent_remaining_mean"] for r in rows}
    levels = levels or selected_levels(remaining)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    entries = []
    for i, level in enumerate(levels):
        curves = [results.level_history(exp.trial_dir(seed), level) for seed in exp.seeds
                  if paths.level(exp.trial_dir(seed), level).is_dir()]
        its, acc = _mean_curve(curves, "test_accuracy")
        (line,) = ax.plot(its, 100 * acc, color=drawing.colour(i))
        entries.append((line, f"level {level} ({remaining[level]:.1f}% remaining)"))
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    n = len(exp.trials)
    drawing.title(ax, f"{label or exp.label()}: test accuracy during training "
                      f"({'mean of ' + str(n) + ' trials' if n > 1 else '1 trial'})")
    ax.grid(True, alpha=0.3)
    drawing.legend(ax, entries)
    return drawing.save(fig, folder, name)


def _curves(histories, key):
    """Iterations recorded by every history, and ``key`` there: (iterations, [history, iteration])."""
    curves = [{r["iteration"]: r[key] for r in h if r.get(key) is not None} for h in histories]
    common = sorted(set.intersection(*map(set, curves)))
    return np.asarray(common), np.asarray([[curve[it] for it in common] for curve in curves], dtype=np.float64)


def _mean_curve(histories, key):
    """Iterations recorded by every history and the mean of ``key`` there."""
    its, values = _curves(histories, key)
    return its, values.mean(axis=0)


def run_figures(hparams, metrics, folder, fmt="png"):
    """Accuracy over training (and, for a supermask run, mask density per layer), as ``fmt`` files."""
    plt = drawing.pyplot()
    history = metrics["history"]
    per_epoch = metrics.get("epochs") and metrics.get("iterations")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    entries = []
    for i, (key, label) in enumerate((("train_accuracy", "train (mean since last record)"),
                                      ("val_accuracy", "validation"), ("test_accuracy", "test"))):
        pts = [(r["iteration"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            its, acc = zip(*pts)
            x = np.asarray(its) * (metrics["epochs"] / metrics["iterations"]) if per_epoch else np.asarray(its)
            entries.append((ax.plot(x, 100 * np.asarray(acc), color=drawing.colour(i))[0], label))
    ax.set_xlabel("epoch" if per_epoch else "training iteration")
    ax.set_ylabel("accuracy (%)")
    drawing.title(ax, f"{run_label(hparams)}: accuracy during training")
    ax.grid(True, alpha=0.3)
    drawing.legend(ax, entries)
    names = [drawing.save(fig, folder, f"accuracy_over_training.{fmt}")]
    density = metrics.get("density")
    if isinstance(density, dict) and density:
        layers = [k for k in density if k != "total"]
        fig, ax = plt.subplots(figsize=(7, 4))
        x = np.arange(len(layers))
        kept = ax.bar(x - 0.2, [100 * density[k]["inference"] for k in layers], 0.4, color=drawing.colour(0))
        expected = ax.bar(x + 0.2, [100 * density[k]["expected"] for k in layers], 0.4, color=drawing.colour(1))
        ax.set_xticks(x)
        ax.set_xticklabels(layers)
        ax.set_ylabel("weights kept (%)")
        ax.set_xlabel("layer")
        drawing.title(ax, f"{run_label(hparams)}: learned mask density per layer")
        drawing.legend(ax, [(kept, "inference mask (kept)"), (expected, "expected (mean keep probability)")])
        ax.grid(True, axis="y", alpha=0.3)
        names.append(drawing.save(fig, folder, f"mask_density.{fmt}"))
    return names


def runs_figure(groups, folder, name, title):
    """Test accuracy over training epochs of groups of runs, one curve per group (the mean
    over its runs, a band for their spread: min to max), from the first record after the start
    (the untrained point would flatten the curves); ``groups``: ``{label: [(hparams, metrics), ...]}``."""
    plt = drawing.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    entries = []
    for i, (label, runs) in enumerate(groups.items()):
        its, values = _curves([[r for r in m["history"] if r["iteration"] > 0] for _, m in runs], "test_accuracy")
        acc = values.mean(axis=0)
        epochs = its * runs[0][1]["epochs"] / runs[0][1]["iterations"]
        (line,) = ax.plot(epochs, 100 * acc, color=drawing.colour(i))
        entries.append((line, f"{label} ({len(runs)} run{'s' if len(runs) > 1 else ''})"))
        if len(runs) > 1:
            ax.fill_between(epochs, 100 * values.min(axis=0), 100 * values.max(axis=0), color=drawing.colour(i),
                            alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    drawing.title(ax, title)
    ax.grid(True, alpha=0.3)
    drawing.legend(ax, entries)
    return drawing.save(fig, folder, name)


def init_sweep_figure(rows, folder, title, fmt="png"):
    """One panel per Mask-1 action, one curve per criterion (Zhou et al., Fig. 3), as a ``fmt`` file."""
    plt = drawing.pyplot()
    criteria = list(dict.fromkeys(r["criterion"] for r in rows))
    mask1s = list(dict.fromkeys(r["mask1"] for r in rows))
    fig, axes = plt.subplots(1, len(mask1s), figsize=(4.2 * len(mask1s) + 2.8, 4.8), sharey=True, squeeze=False)
    entries = {}
    for ax, mask1 in zip(axes[0], mask1s):
        for i, criterion in enumerate(criteria):
            pts = sorted(((100 * r["density"], 100 * r["accuracy"]) for r in rows
                          if r["criterion"] == criterion and r["mask1"] == mask1 and r["density"] > 0), reverse=True)
            if pts:
                xs, ys = zip(*pts)
                style = drawing.STYLES[(i // len(drawing.PALETTE)) % len(drawing.STYLES)]
                (line,) = ax.plot(xs, ys, color=drawing.colour(i), linestyle=style, marker="o", markersize=2.5)
                entries.setdefault(criterion, line)
        drawing.remaining_axis(ax, [x for r in rows for x in [100 * r["density"]] if x > 0])
        ax.set_title(f"Mask-1: {mask1}", fontsize=10)
    axes[0][0].set_ylabel("test accuracy, untrained (%)")
    right = 1 - 2.6 / fig.get_figwidth()  # room for the legend, which starts where the panels end
    fig.legend(list(entries.values()), list(entries), loc="center left", bbox_to_anchor=(right, 0.5), fontsize=7,
               title="mask criterion", title_fontsize=8)
    fig.suptitle(drawing.wrap(title, int(9.5 * fig.get_figwidth())), fontsize=10)
    return [drawing.save(fig, folder, f"init_sweep.{fmt}", rect=(0, 0, right, 1))]
