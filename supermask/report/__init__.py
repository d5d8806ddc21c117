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

It writes the figures (``--format png|pdf|svg``, default png) and ``report.md`` into ``--out``
(default: ``PATH/report/``, or ``<name>_report/`` beside a CSV), replacing an earlier report as a
whole, and prints where. Several experiments are labelled by what differs in their
``hparams.json`` (``experiment_labels``) and their files named by their paths below the common
folder (``experiment_names``). The early-stop iteration is the one the experiment's
``early_stop`` criterion picked: ``val_loss`` (also when absent), the iteration of minimum
validation loss as in Frankle & Carbin (2019, App. C), or ``val_accuracy``.

Modules, each importing only those before it: ``labels`` (names, labels, file stems, ticks: pure
functions), ``checks`` (``metrics.json`` checked before it is read), ``drawing`` (the figures' style,
saving; matplotlib imported only here, when a figure is drawn), ``figures``, ``markdown``
(``report.md``), this file (the entry points ``report`` and ``lottery_report``) and ``__main__``
(the command).
"""

import importlib
from pathlib import Path

from supermask import paths, results, store
from supermask.errors import ConfigError
from supermask.report.checks import HISTORY_KEYS, SUMMARY_KEYS, check_experiment, check_metrics
from supermask.report.drawing import DPI, FORMATS, METADATA, PALETTE, STYLES, check_format
from supermask.report.figures import (init_sweep_figure, lottery_figures, run_figures, runs_figure, selected_levels,
                                      training_curves)
from supermask.report.labels import (MOST_TICKS, early_stop, early_stop_text, experiment_labels, experiment_names,
                                     file_stems, remaining_ticks, tick_label)
from supermask.report.markdown import init_sweep_markdown, lottery_markdown, run_markdown

__all__ = [
    "DPI", "FORMATS", "HISTORY_KEYS", "METADATA", "MOST_TICKS", "PALETTE", "STYLES", "SUMMARY_KEYS",
    "build_parser", "check_experiment", "check_format", "check_metrics", "default_out", "early_stop",
    "early_stop_text", "experiment_labels", "experiment_names", "file_stems", "init_sweep_figure",
    "init_sweep_markdown", "lottery_figures", "lottery_markdown", "lottery_report", "main", "remaining_ticks",
    "report", "run_figures", "run_markdown", "runs_figure", "selected_levels", "tick_label", "training_curves",
]


def default_out(path):
    path = Path(path)
    return path.parent / f"{path.stem}_report" if path.is_file() else path / "report"


def report(path, out=None, fmt="png"):
    """Write the report of ``path`` (see the module docstring) with ``fmt`` figures; returns
    ``(out folder, files)``."""
    check_format(fmt)
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; give an experiment or run folder, a root of experiments, "
                          "or an init-sweep CSV.")
    out = Path(out) if out else default_out(path)
    if path.is_file():
        rows = results.read_init_sweep(path)
        title = f"Masks at initialisation ({path.name}): accuracy before training"
        write = lambda folder: _write(folder, init_sweep_figure(rows, folder, title, fmt),
                                      lambda figs: init_sweep_markdown(rows, figs, path.name))
    elif results.is_run(path) and not results.is_experiment(path):
        check_metrics(paths.metrics(path), level=False)
        hparams, metrics = results.load_run(path)
        write = lambda folder: _write(folder, run_figures(hparams, metrics, folder, fmt),
                                      lambda figs: run_markdown(hparams, metrics, figs))
    else:
        found = results.find_experiments(path)
        if not found:
            inside = next((p for p in path.resolve().parents if results.is_experiment(p)), None)
            hint = (f"it lies inside the experiment {inside}: report that folder" if inside else
                    "give an experiment folder (<root>/<hash>, holding hparams.json and trial_<seed>/), a root "
                    "holding some, a run folder or an init-sweep CSV")
            raise ConfigError(f"{path} holds no lottery experiment, run folder or init-sweep CSV; {hint}.")
        for folder in found:
            check_experiment(folder)  # one clear line for a damaged metrics.json, before reading them back
        return lottery_report([results.load_experiment(p) for p in found], out, fmt=fmt)
    return _replace(out, write)


def lottery_report(experiments, out, subject=None, fmt="png"):
    """Write the report of the ``results.Experiment`` list into folder ``out`` (replaced as a
    whole) with ``fmt`` figures; returns ``(out, files)``."""
    check_format(fmt)
    return _replace(Path(out), lambda folder: _write(
        folder, lottery_figures(experiments, folder, subject=subject, fmt=fmt),
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
    """Write report.md beside ``figures``; returns every file written, each once."""
    (folder / "report.md").write_text(markdown(figures))
    return list(dict.fromkeys([*figures, "report.md"]))


def __getattr__(name):
    # The command (``main``, ``build_parser``) lives in ``__main__`` and is imported only when asked
    # for: importing it here would put ``supermask.report.__main__`` in sys.modules before
    # ``python -m supermask.report`` runs it, and runpy then warns on stderr.
    if name in ("main", "build_parser"):
        return getattr(importlib.import_module("supermask.report.__main__"), name)
    raise AttributeError(f"module 'supermask.report' has no attribute {name!r}")
