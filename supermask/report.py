"""Figures and a Markdown summary of results: ``python -m supermask.report PATH``.

PATH is one of:

* a lottery experiment folder (``<root>/<hash>``) or a root holding several (any depth):
  test accuracy at early stop and the early-stop iteration vs % of weights remaining (log
  axis, reversed as in the papers; tickets solid, random-reinit controls dashed; mean ± std
  over trials as error bars; one curve per experiment), and test accuracy over training
  for a few levels of each experiment;
* a train or train_supermask run folder: accuracy over training, and for a supermask run
  the density of the learned mask per layer;
* an init-sweep CSV (``supermask.init_sweep``): accuracy of the untrained masked network vs
  % of weights remaining, one curve per criterion × Mask-1 action (Zhou et al., Fig. 3).

It writes PNGs and ``report.md`` into ``--out`` (default: ``PATH/report/``, or
``<name>_report/`` beside a CSV), replacing an earlier report as a whole, and prints where.
"""

from pathlib import Path

import numpy as np

from supermask import paths, results, store
from supermask.cli import percent
from supermask.errors import ConfigError

# Okabe & Ito's colour-blind-safe palette (black last); curves past it change line style.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STYLES = ("-", "--", ":", "-.")
DPI = 120


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _colour(i):
    return PALETTE[i % len(PALETTE)]


def _remaining_axis(ax, values):
    """Log x axis of % weights remaining over ``values``, largest on the left as in the papers."""
    ax.set_xscale("log")
    lo, hi = min(values), max(values)
    ax.set_xlim(hi * 1.15, lo / 1.15)  # reversed
    ticks = [t for t in (100, 51.3, 21.1, 7.0, 3.6, 1.9, 1.0, 0.5, 0.2, 0.1) if lo / 1.15 <= t <= hi * 1.15]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("weights remaining (%)")
    ax.grid(True, alpha=0.3)


def _save(fig, folder, name):
    fig.tight_layout()
    fig.savefig(folder / name, dpi=DPI)
    _pyplot().close(fig)
    return name


def _pct(mean, std):
    """``mean ± std`` of accuracies, in percent (no unit: table cells)."""
    return "–" if mean is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


# --- lottery experiments -------------------------------------------------------------------------


def lottery_figures(experiments, folder, curves=True, subject=None):
    """Write the lottery figures of ``experiments`` (a list of ``results.Experiment``) into
    ``folder`` (with ``curves``, also each experiment's training curves); ``subject`` names them in
    the titles (default: the experiment's label, or their count); returns the file names."""
    plt = _pyplot()
    names = []
    several = len(experiments) > 1
    for key, ylabel, scale, name in (
            ("test_accuracy_at_early_stop", "test accuracy at early stop (%)", 100, "accuracy_vs_remaining.png"),
            ("early_stop_iteration", "early-stop iteration", 1, "early_stop_vs_remaining.png")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, exp in enumerate(experiments):
            rows = exp.summary
            x = [r["percent_remaining_mean"] for r in rows]
            label = exp.label() if several else "ticket"
            for control in (False, True):
                k = f"control_{key}" if control else key
                pts = [(xi, r[f"{k}_mean"] * scale, r[f"{k}_std"] * scale)
                       for xi, r in zip(x, rows) if r[f"{k}_mean"] is not None]
                if not pts:
                    continue
                xs, ys, es = zip(*pts)
                ax.errorbar(xs, ys, yerr=es, color=_colour(i), linestyle="--" if control else "-",
                            marker="o" if not control else "s", markersize=4, capsize=3,
                            label=(f"{label}, random reinit" if several else "random-reinit control")
                            if control else label)
        _remaining_axis(ax, [r["percent_remaining_mean"] for e in experiments for r in e.summary])
        ax.set_ylabel(ylabel)
        ax.set_title(_lottery_title(experiments, "test accuracy" if scale == 100 else "early stopping", subject))
        ax.legend(fontsize=8)
        names.append(_save(fig, folder, name))
    for exp in experiments if curves else ():
        names.append(training_curves(exp, folder, f"training_curves_{exp.path.name}.png"))
    return names


def _lottery_title(experiments, what, subject=None):
    first = experiments[0]
    trials = sorted({len(e.trials) for e in experiments})
    n = "/".join(map(str, trials))
    subject = subject or (first.label() if len(experiments) == 1 else f"{len(experiments)} experiments")
    return f"{subject}: {what}, mean ± std over {n} trial{'s' if trials != [1] else ''}"


def selected_levels(levels, count=4):
    """About ``count`` levels spread from the first to the last (always both)."""
    levels = sorted(levels)
    if len(levels) <= count:
        return levels
    picks = {levels[round(i * (len(levels) - 1) / (count - 1))] for i in range(count)}
    return sorted(picks)


def training_curves(exp, folder, name, levels=None):
    """Test accuracy vs iteration for a few levels of one experiment (mean over trials)."""
    plt = _pyplot()
    rows = exp.summary
    remaining = {r["level"]: r["percent_remaining_mean"] for r in rows}
    levels = levels or selected_levels(remaining)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, level in enumerate(levels):
        curves = [results.level_history(exp.trial_dir(seed), level) for seed in exp.seeds
                  if paths.level(exp.trial_dir(seed), level).is_dir()]
        its, acc = _mean_curve(curves, "test_accuracy")
        ax.plot(its, 100 * acc, color=_colour(i), label=f"level {level} ({remaining[level]:.1f}% remaining)")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    n = len(exp.trials)
    ax.set_title(f"{exp.label()}: test accuracy during training ({'mean of ' + str(n) + ' trials' if n > 1 else '1 trial'})",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, folder, name)


def _curves(histories, key):
    """Iterations recorded by every history, and ``key`` there: (iterations, [history, iteration])."""
    curves = [{r["iteration"]: r[key] for r in h if r.get(key) is not None} for h in histories]
    common = sorted(set.intersection(*map(set, curves)))
    return np.asarray(common), np.asarray([[curve[it] for it in common] for curve in curves], dtype=np.float64)


def _mean_curve(histories, key):
    """Iterations recorded by every history and the mean of ``key`` there."""
    its, values = _curves(histories, key)
    return its, values.mean(axis=0)


def _pruning_text(h):
    """How an experiment pruned, from its hparams: global rate or per-kind rates, ignored layers."""
    if h.get("pruning") == "global":
        text = f"global pruning, {h.get('global_rate')} of the remaining weights per level"
    else:
        text = (f"pruning rates fc {h.get('rate_fc') or '–'} / conv {h.get('rate_conv') or '–'} / output "
                f"{h.get('rate_output') or '–'}")
        if h.get("layer_rates"):
            text += " (" + ", ".join(f"{name} {rate}" for name, rate in h["layer_rates"]) + ")"
    if h.get("prune_ignore"):
        text += f"; never pruned: {', '.join(h['prune_ignore'])}"
    return text


def lottery_markdown(experiments, figures):
    lines = ["# Lottery-ticket report", ""]
    lines += [f"![{f}]({f})" for f in figures if not f.startswith("training_curves_")]
    for exp in experiments:
        h = exp.hparams
        lines += ["", f"## {exp.label()}", "",
                  f"Folder `{exp.path}`; trials (seeds) {', '.join(map(str, exp.seeds))}; "
                  f"{h.get('iterations', '?')} iterations per level, batch {h.get('batch_size', '?')}, "
                  f"{h.get('optimizer', 'adam')} lr {h.get('learning_rate', '?')}, reset `{h.get('reset', 'init')}`, "
                  f"{_pruning_text(h)}.", "",
                  "Test accuracy at early stop (the iteration of best validation accuracy) and that iteration, "
                  "mean ± std over trials:", "",
                  "| level | % remaining | trials | ticket test acc. (%) | ticket early-stop it. | "
                  "control test acc. (%) | control early-stop it. |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in exp.summary:
            def its(k):
                m, s = r[f"{k}_mean"], r[f"{k}_std"]
                return "–" if m is None else f"{m:.0f} ± {s:.0f}"

            lines.append(f"| {r['level']} | {r['percent_remaining_mean']:.1f} | {r['trials']} | "
                         f"{_pct(r['test_accuracy_at_early_stop_mean'], r['test_accuracy_at_early_stop_std'])} | "
                         f"{its('early_stop_iteration')} | "
                         f"{_pct(r['control_test_accuracy_at_early_stop_mean'], r['control_test_accuracy_at_early_stop_std'])}"
                         f" | {its('control_early_stop_iteration')} |")
        lines += ["", f"![training curves](training_curves_{exp.path.name}.png)"]
    return "\n".join(lines) + "\n"


# --- single runs ----------------------------------------------------------------------------------


def run_figures(hparams, metrics, folder):
    """Accuracy over training (and, for a supermask run, mask density per layer)."""
    plt = _pyplot()
    history = metrics["history"]
    per_epoch = metrics.get("epochs") and metrics.get("iterations")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (key, label) in enumerate((("train_accuracy", "train (mean since last record)"),
                                      ("val_accuracy", "validation"), ("test_accuracy", "test"))):
        pts = [(r["iteration"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            its, acc = zip(*pts)
            x = np.asarray(its) * (metrics["epochs"] / metrics["iterations"]) if per_epoch else np.asarray(its)
            ax.plot(x, 100 * np.asarray(acc), color=_colour(i), label=label)
    ax.set_xlabel("epoch" if per_epoch else "training iteration")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{_run_label(hparams)}: accuracy during training", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    names = [_save(fig, folder, "accuracy_over_training.png")]
    density = metrics.get("density")
    if isinstance(density, dict) and density:
        layers = [k for k in density if k != "total"]
        fig, ax = plt.subplots(figsize=(7, 4))
        x = np.arange(len(layers))
        ax.bar(x - 0.2, [100 * density[k]["inference"] for k in layers], 0.4, color=_colour(0),
               label="inference mask (kept)")
        ax.bar(x + 0.2, [100 * density[k]["expected"] for k in layers], 0.4, color=_colour(1),
               label="expected (mean keep probability)")
        ax.set_xticks(x)
        ax.set_xticklabels(layers)
        ax.set_ylabel("weights kept (%)")
        ax.set_xlabel("layer")
        ax.set_title(f"{_run_label(hparams)}: learned mask density per layer", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        names.append(_save(fig, folder, "mask_density.png"))
    return names


def runs_figure(groups, folder, name, title):
    """Test accuracy over training epochs of groups of runs, one curve per group (the mean
    over its runs, a band for their spread: min to max), from the first record after the start
    (the untrained point would flatten the curves); ``groups``: ``{label: [(hparams, metrics), ...]}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, runs) in enumerate(groups.items()):
        its, values = _curves([[r for r in m["history"] if r["iteration"] > 0] for _, m in runs], "test_accuracy")
        acc = values.mean(axis=0)
        epochs = its * runs[0][1]["epochs"] / runs[0][1]["iterations"]
        ax.plot(epochs, 100 * acc, color=_colour(i), label=f"{label} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
        if len(runs) > 1:
            ax.fill_between(epochs, 100 * values.min(axis=0), 100 * values.max(axis=0), color=_colour(i),
                            alpha=0.2, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, folder, name)


def _run_label(h):
    parts = [f"{h.get('model', '?')}/{h.get('dataset', '?')}"]
    if "learner" in h:
        parts.append(f"supermask {h['learner']}, weights {h.get('weights', '?')}" + (", DWR" if h.get("dwr") else ""))
    parts.append(f"seed {h.get('seed', '?')}")
    return " · ".join(parts)


def run_markdown(hparams, metrics, figures):
    s = metrics.get("summary", {})
    lines = [f"# {_run_label(hparams)}", "",
             f"Best validation accuracy {percent(s.get('best_val_accuracy'))} at iteration "
             f"{s.get('early_stop_iteration', '-')}; test accuracy there {percent(s.get('test_accuracy_at_early_stop'))}; "
             f"final test accuracy {percent(s.get('final_test_accuracy'))}."]
    final = metrics.get("final", {}).get("deterministic")
    if final:
        lines += ["", f"Final test accuracy with the deterministic mask: {percent(final.get('test_accuracy'))}."]
    density = metrics.get("density")
    if isinstance(density, dict) and "total" in density:
        lines += ["", f"Weights kept by the learned mask: {percent(density['total']['inference'])}."]
    lines += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


# --- init sweeps ----------------------------------------------------------------------------------


def init_sweep_figure(rows, folder, title):
    """One panel per Mask-1 action, one curve per criterion (Zhou et al., Fig. 3)."""
    plt = _pyplot()
    criteria = list(dict.fromkeys(r["criterion"] for r in rows))
    mask1s = list(dict.fromkeys(r["mask1"] for r in rows))
    fig, axes = plt.subplots(1, len(mask1s), figsize=(4.2 * len(mask1s) + 2.8, 4.8), sharey=True, squeeze=False)
    for ax, mask1 in zip(axes[0], mask1s):
        for i, criterion in enumerate(criteria):
            pts = sorted(((100 * r["density"], 100 * r["accuracy"]) for r in rows
                          if r["criterion"] == criterion and r["mask1"] == mask1 and r["density"] > 0), reverse=True)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, color=_colour(i), linestyle=STYLES[(i // len(PALETTE)) % len(STYLES)],
                        marker="o", markersize=2.5, label=criterion)
        _remaining_axis(ax, [x for r in rows for x in [100 * r["density"]] if x > 0])
        ax.set_title(f"Mask-1: {mask1}", fontsize=10)
    axes[0][0].set_ylabel("test accuracy, untrained (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    right = 1 - 2.6 / fig.get_figwidth()  # room for the legend, which starts where the panels end
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(right, 0.5), fontsize=7, title="mask criterion",
               title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, right, 1))
    fig.savefig(folder / "init_sweep.png", dpi=DPI)
    plt.close(fig)
    return ["init_sweep.png"]


def init_sweep_markdown(rows, figures, source):
    best = sorted(rows, key=lambda r: -r["accuracy"])[:10]
    lines = [f"# Init sweep: `{source}`", "", "Accuracy of the masked network before any training "
             "(Zhou et al.'s masks at initialisation). The ten best rows:", "",
             "| criterion | Mask-1 | % remaining | test accuracy (%) |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {r['criterion']} | {r['mask1']} | {100 * r['density']:.1f} | {100 * r['accuracy']:.2f} |"
              for r in best]
    lines += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


# --- the command ----------------------------------------------------------------------------------


def default_out(path):
    path = Path(path)
    return path.parent / f"{path.stem}_report" if path.is_file() else path / "report"


def report(path, out=None):
    """Write the report of ``path`` (see the module docstring); returns ``(out folder, files)``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; give an experiment or run folder, a root of experiments, "
                          "or an init-sweep CSV.")
    out = Path(out) if out else default_out(path)
    if path.is_file():
        rows = results.read_init_sweep(path)
        title = f"Masks at initialisation ({path.name}): accuracy before training"
        write = lambda folder: _write(folder, init_sweep_figure(rows, folder, title),
                                      lambda figs: init_sweep_markdown(rows, figs, path.name))
    elif results.is_run(path) and not results.is_experiment(path):
        hparams, metrics = results.load_run(path)
        write = lambda folder: _write(folder, run_figures(hparams, metrics, folder),
                                      lambda figs: run_markdown(hparams, metrics, figs))
    else:
        found = results.find_experiments(path)
        if not found:
            inside = next((p for p in path.resolve().parents if results.is_experiment(p)), None)
            hint = (f"it lies inside the experiment {inside}: report that folder" if inside else
                    "give an experiment folder (<root>/<hash>, holding hparams.json and trial_<seed>/), a root "
                    "holding some, a run folder or an init-sweep CSV")
            raise ConfigError(f"{path} holds no lottery experiment, run folder or init-sweep CSV; {hint}.")
        return lottery_report([results.load_experiment(p) for p in found], out)
    return _replace(out, write)


def lottery_report(experiments, out, subject=None):
    """Write the report of the ``results.Experiment`` list into folder ``out`` (replaced as a
    whole); returns ``(out, files)``."""
    return _replace(Path(out), lambda folder: _write(folder, lottery_figures(experiments, folder, subject=subject),
                                                      lambda figs: lottery_markdown(experiments, figs)))


def _replace(out, write):
    store.check_output_dir(out, "the report folder (--out)", overwrite=True)
    if out.is_dir() and any(out.iterdir()) and not (out / "report.md").is_file():
        raise ConfigError(f"{out} exists and holds something other than a report; it will not be replaced. "
                          "Choose another --out.")
    with store.atomic_dir(out, replace=True) as tmp:
        files = write(tmp)
    return out, files


def _write(folder, figures, markdown):
    (folder / "report.md").write_text(markdown(figures))
    return [*figures, "report.md"]


def build_parser():
    from supermask.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m supermask.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="experiment folder, root of experiments, run folder, or init-sweep CSV")
    parser.add_argument("--out", default=None, help="folder for the figures and report.md (default: PATH/report, "
                                                    "or <name>_report beside a CSV); replaced as a whole")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    out, files = report(args.path, args.out)
    print(f"Wrote {len(files)} files to {out}:")
    for name in files:
        print(f"  {out / name}")
    return out


if __name__ == "__main__":
    from supermask.cli import run_main

    run_main(main)
