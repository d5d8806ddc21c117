"""The text of ``report.md``: a lottery experiment's table of mean ± std per level, a run's
summary, an init sweep's best rows; each beside the figures it embeds."""

import re
from pathlib import Path

from supermask.results import percent
from supermask.report.labels import early_stop, early_stop_text, hparam, labels_of, run_label, stems_of


def _md(text):
    """``text`` for a Markdown heading: underscores that could start or end emphasis escaped, so a
    model ``__main__:build`` is not shown as a bold "main"."""
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\_", text)


def _pct(mean, std):
    """``mean ± std`` of accuracies, in percent (no unit: table cells)."""
    return "–" if mean is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


def _stat(row, key):
    """``(mean, std)`` of ``key`` in a row of ``Experiment.summary``."""
    return row[f"{key}_mean"], row[f"{key}_std"]


def _its(mean, std):
    """``mean ± std`` of iterations (table cells)."""
    return "–" if mean is None else f"{mean:.0f} ± {std:.0f}"


def pruning_text(h):
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


def training_text(h):
    """``N iterations per level, batch B, adam lr R`` (null settings of older folders: their defaults)."""
    return (f"{hparam(h, 'iterations', '?')} iterations per level, batch {hparam(h, 'batch_size', '?')}, "
            f"{hparam(h, 'optimizer', 'adam')} lr {hparam(h, 'learning_rate', '?')}")


def lottery_markdown(experiments, figures):
    lines = ["# Lottery-ticket report", ""]
    lines += [f"![{f}]({f})" for f in figures if not f.startswith("training_curves_")]
    for exp, label, stem in zip(experiments, labels_of(experiments), stems_of(experiments)):
        h = exp.hparams
        lines += ["", f"## {_md(label)}", "",
                  f"Folder `{exp.path}`; trials (seeds) {', '.join(map(str, exp.seeds))}; "
                  f"{training_text(h)}, {pruning_text(h)}.", "",
                  f"Early stop (`early_stop = {early_stop(h)}`): {early_stop_text(h)}. "
                  "Test accuracy there and that iteration, mean ± std over trials:", "",
                  "| level | % remaining | trials | ticket test acc. (%) | ticket early-stop it. | "
                  "control test acc. (%) | control early-stop it. |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in exp.summary:
            lines.append(f"| {r['level']} | {r['percent_remaining_mean']:.1f} | {r['trials']} | "
                         f"{_pct(*_stat(r, 'test_accuracy_at_early_stop'))} | "
                         f"{_its(*_stat(r, 'early_stop_iteration'))} | "
                         f"{_pct(*_stat(r, 'control_test_accuracy_at_early_stop'))} | "
                         f"{_its(*_stat(r, 'control_early_stop_iteration'))} |")
        curves = [f for f in figures if Path(f).stem == f"training_curves_{stem}"]
        lines += ["", *(f"![training curves]({f})" for f in curves)]
    return "\n".join(lines) + "\n"


def run_markdown(hparams, metrics, figures):
    s = metrics.get("summary", {})
    lines = [f"# {_md(run_label(hparams))}", "",
             f"Early stop ({early_stop_text(hparams)}) at iteration {s.get('early_stop_iteration', '-')}: "
             f"test accuracy there {percent(s.get('test_accuracy_at_early_stop'))}. "
             f"Best validation accuracy {percent(s.get('best_val_accuracy'))}; "
             f"final test accuracy {percent(s.get('final_test_accuracy'))}."]
    final = metrics.get("final", {}).get("deterministic")
    if final:
        lines += ["", f"Final test accuracy with the deterministic mask: {percent(final.get('test_accuracy'))}."]
    density = metrics.get("density")
    if isinstance(density, dict) and "total" in density:
        lines += ["", f"Weights kept by the learned mask: {percent(density['total']['inference'])}."]
    lines += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def init_sweep_markdown(rows, figures, source):
    best = sorted(rows, key=lambda r: -r["accuracy"])[:10]
    lines = [f"# Init sweep: `{source}`", "", "Accuracy of the masked network before any training "
             "(Zhou et al.'s masks at initialisation). The ten best rows:", "",
             "| criterion | Mask-1 | % remaining | test accuracy (%) |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {r['criterion']} | {r['mask1']} | {100 * r['density']:.1f} | {100 * r['accuracy']:.2f} |"
              for r in best]
    lines += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"

