"""Reading results back: lottery experiments, their trials and levels, single runs and
init sweeps, and the mean ± standard deviation over trials.

What is on disk (``supermask.paths`` spells the names)::

    <root>/<experiment hash>/hparams.json               the resolved hyperparameters
                             summary.csv                 mean ± std over trials, per level
                             trial_<seed>/summary.csv    one row per level
                             trial_<seed>/level_<L>/metrics.json  [control/metrics.json]
    <run>/hparams.json, metrics.json                    a train or train_supermask run
    <name>.csv                                          an init sweep (supermask.init_sweep)

Accuracies are fractions in [0, 1]; ``percent_remaining`` is in percent; iterations count
optimiser steps. The standard deviation is the sample one (ddof = 1; 0 for one trial).
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supermask import early_stop, paths, store
from supermask.errors import ConfigError

LEVEL_METRICS = ("percent_remaining", "best_val_accuracy", "val_accuracy_at_early_stop", "test_accuracy_at_early_stop",
                 "early_stop_iteration", "final_test_accuracy", "control_best_val_accuracy",
                 "control_val_accuracy_at_early_stop", "control_test_accuracy_at_early_stop",
                 "control_early_stop_iteration")
_SUMMARY_KEYS = ("best_val_accuracy", "val_accuracy_at_early_stop", "test_accuracy_at_early_stop",
                 "early_stop_iteration")


def percent(fraction, digits=2):
    """An accuracy (a fraction) as a percentage for people: ``0.97154`` -> ``"97.15 %"``."""
    return "-" if fraction is None else f"{100 * fraction:.{digits}f} %"


def criterion_of(hparams):
    """The early-stopping criterion a run's ``hparams`` name (folders from before the option
    existed: the paper's, minimum validation loss)."""
    return (hparams or {}).get("early_stop") or early_stop.DEFAULT


def summary_of(metrics, criterion, path):
    """The summary of a run's ``metrics`` under ``criterion``, computed from its history (so
    runs written before a criterion existed, or under another, read back the same way);
    CorruptFileError naming ``path`` if the history is missing or not numbers."""
    history = metrics.get("history") if isinstance(metrics, dict) else None
    if not isinstance(history, list) or not history or not all(isinstance(r, dict) for r in history):
        raise store.CorruptFileError(f"{path} is corrupt: it lacks the run's history (a list of recorded "
                                     "evaluations).", path)
    try:
        return early_stop.summarize(history, criterion)
    except (ValueError, KeyError, TypeError) as exc:
        message = str(exc).strip("'\"")
        raise store.CorruptFileError(f"{path} is corrupt: its history is unreadable ({message}).", path) from None


# --- one trial -----------------------------------------------------------------------------------


def read_metrics(folder):
    """``metrics.json`` of a finished level or control folder; CorruptFileError if it lacks its summary."""
    path = paths.metrics(folder)
    metrics = store.read_json(path)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("summary"), dict) \
            or "overall_density" not in metrics:
        raise store.CorruptFileError(f"{path} is corrupt: it lacks the run's summary.", path)
    density = metrics["overall_density"]
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 <= density <= 1:
        raise store.CorruptFileError(f"{path} is corrupt: overall_density must be a fraction in [0, 1]. "
                                     f"Received: {density!r}", path)
    return metrics


def trial_rows(trial_dir, levels=None, criterion=None):
    """One dict per finished level of a trial (levels 0, 1, ... while their folders exist,
    up to ``levels`` when given): the keys of ``LEVEL_METRICS`` plus ``level``; the
    ``control_*`` values are None for a level without a random-reinit control.

    Each level is read at its early-stopping iteration under ``criterion`` (default: the
    experiment's, from ``hparams.json`` beside the trial; see ``criterion_of``), recomputed
    from the recorded history (``supermask.early_stop``)."""
    if criterion is None:
        hparams_path = paths.hparams(Path(trial_dir).parent)
        criterion = criterion_of(store.read_json(hparams_path) if hparams_path.is_file() else None)
    rows = []
    level = 0
    while levels is None or level <= levels:
        folder = paths.level(trial_dir, level)
        if not folder.is_dir():
            break
        metrics = read_metrics(folder)
        s = summary_of(metrics, criterion, paths.metrics(folder))
        row = {"level": level, "percent_remaining": round(100 * metrics["overall_density"], 2),
               **{key: s[key] for key in _SUMMARY_KEYS}, "final_test_accuracy": s["final_test_accuracy"]}
        control = paths.control(folder)
        c = summary_of(read_metrics(control), criterion, paths.metrics(control)) if control.is_dir() else {}
        row.update({f"control_{key}": c.get(key) for key in _SUMMARY_KEYS})
        rows.append(row)
        level += 1
    return rows


def level_history(trial_dir, level, control=False):
    """The recorded history rows (see ``engine.TrainResult``) of one level (or its control)."""
    folder = paths.level(trial_dir, level)
    return read_metrics(paths.control(folder) if control else folder)["history"]


# --- experiments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """A lottery experiment read back: ``trials`` maps each seed to its ``trial_rows``;
    ``summary`` is their ``aggregate`` (mean ± std per level)."""

    path: Path
    hparams: dict
    trials: dict
    summary: list

    @property
    def seeds(self):
        return sorted(self.trials)

    @property
    def early_stop(self):
        """The early-stopping criterion its rows are read at (``criterion_of``)."""
        return criterion_of(self.hparams)

    def trial_dir(self, seed):
        return paths.trial(self.path, seed)

    def label(self):
        """A short name: model, dataset, criterion, global pruning and the Mask-1 / Mask-0 actions."""
        h = self.hparams
        parts = [f"{h.get('model', '?')}/{h.get('dataset', '?')}", h.get("criterion", "large_final")]
        actions = [a for a in (h.get("mask1"), h.get("mask0")) if a and a not in ("none", "mask")]
        if h.get("pruning") == "global":
            parts.append("global" + (f" (not {', '.join(h['prune_ignore'])})" if h.get("prune_ignore") else ""))
        return " · ".join(parts + actions)


def is_experiment(path):
    path = Path(path)
    return paths.hparams(path).is_file() and any(path.glob("trial_*/level_0"))


def load_experiment(path):
    """The ``Experiment`` in folder ``path``; ConfigError if it is not one or has no finished level."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder; give an experiment folder (<root>/<hash>) or a root holding some.")
    if not paths.hparams(path).is_file():
        raise ConfigError(f"{path} holds no hparams.json: it is not a lottery experiment folder.")
    trials = {}
    for trial in sorted(path.glob("trial_*")):
        try:
            seed = int(trial.name.split("_", 1)[1])
        except ValueError:
            continue
        rows = trial_rows(trial)
        if rows:
            trials[seed] = rows
    if not trials:
        raise ConfigError(f"{path} has no finished level yet: run or --resume the experiment first.")
    return Experiment(path, store.read_json(paths.hparams(path)), trials, aggregate(trials))


def find_experiments(root):
    """The experiment folders at ``root``: ``root`` itself if it is one, else those below it
    (any depth), sorted by path."""
    root = Path(root)
    if is_experiment(root):
        return [root]
    return sorted(p.parent for p in root.rglob("hparams.json") if is_experiment(p.parent))


# --- mean ± std over trials ---------------------------------------------------------------------


def aggregate(trials):
    """Mean and standard deviation over trials, per level.

    Args:
        trials: ``{seed: trial_rows}``.
    Returns:
        One dict per level that any trial finished: ``level``, ``trials`` (how many have it),
        ``seeds`` (a list), and for each of ``LEVEL_METRICS`` ``<name>_mean`` and
        ``<name>_std`` (sample std, ddof = 1; 0.0 for one trial; None where no trial has a value).
    """
    by_level = {}
    for seed in sorted(trials):
        for row in trials[seed]:
            by_level.setdefault(row["level"], []).append((seed, row))
    out = []
    for level in sorted(by_level):
        entries = by_level[level]
        row = {"level": level, "trials": len(entries), "seeds": [seed for seed, _ in entries]}
        for name in LEVEL_METRICS:
            values = [r[name] for _, r in entries if r.get(name) is not None]
            row[f"{name}_mean"], row[f"{name}_std"] = mean_std(values)
        out.append(row)
    return out


def mean_std(values):
    """``(mean, sample std)`` of a list of numbers; ``(None, None)`` for none, std 0.0 for one."""
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def format_aggregate(rows, criterion=None):
    """The ``aggregate`` rows as an aligned text table (accuracies in percent); with
    ``criterion``, a first line says which early-stopping iteration they are read at."""
    def acc(row, name):
        m, s = row[f"{name}_mean"], row[f"{name}_std"]
        return "-" if m is None else f"{100 * m:6.2f} ± {100 * s:4.2f}"

    def its(row, name):
        m, s = row[f"{name}_mean"], row[f"{name}_std"]
        return "-" if m is None else f"{m:7.0f} ± {s:5.0f}"

    lines = [f" level  % left  trials  {'test@es (ticket)':>16}  {'es iter (ticket)':>16} | "
             f"{'test@es (control)':>17}  {'es iter (control)':>17}"]
    if criterion is not None:
        lines.insert(0, f"early stop: {early_stop.DESCRIPTIONS[criterion]}")
    for r in rows:
        lines.append(f" {r['level']:>5}  {r['percent_remaining_mean']:6.2f}  {r['trials']:>6}  "
                     f"{acc(r, 'test_accuracy_at_early_stop'):>16}  {its(r, 'early_stop_iteration'):>16} | "
                     f"{acc(r, 'control_test_accuracy_at_early_stop'):>17}  "
                     f"{its(r, 'control_early_stop_iteration'):>17}")
    return "\n".join(lines)


def write_experiment_summary(experiment):
    """Write ``<experiment>/summary.csv`` from an ``Experiment``: its ``summary`` rows, seeds
    joined by spaces; returns the file's path."""
    rows = [{**r, "seeds": " ".join(map(str, r["seeds"]))} for r in experiment.summary]
    store.write_csv(paths.experiment_summary(experiment.path), rows)
    return paths.experiment_summary(experiment.path)


# --- single runs and init sweeps ----------------------------------------------------------------


def is_run(path):
    path = Path(path)
    return path.is_dir() and paths.metrics(path).is_file() and paths.hparams(path).is_file()


def load_run(path):
    """``(hparams, metrics)`` of a train or train_supermask run folder."""
    path = Path(path)
    if not is_run(path):
        raise ConfigError(f"{path} is not a run folder (it needs hparams.json and metrics.json).")
    metrics = store.read_json(paths.metrics(path))
    hparams = store.read_json(paths.hparams(path))
    summary = summary_of(metrics, criterion_of(hparams), paths.metrics(path))
    return hparams, {**metrics, "summary": {**(metrics.get("summary") or {}), **summary}}


INIT_SWEEP_COLUMNS = ("criterion", "mask1", "density", "accuracy")


def read_init_sweep(path):
    """The rows of an init-sweep CSV (``supermask.init_sweep``), numbers as floats."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from None
    if not rows or any(c not in rows[0] for c in INIT_SWEEP_COLUMNS):
        raise ConfigError(f"{path} is not an init-sweep CSV: it needs the columns {', '.join(INIT_SWEEP_COLUMNS)}.")
    out = []
    for row in rows:
        parsed = dict(row)
        for key in ("density", "accuracy", "loss", "power"):
            if row.get(key) not in (None, ""):
                try:
                    parsed[key] = float(row[key])
                except ValueError:
                    raise ConfigError(f"{path}: {key} must be a number. Received: {row[key]!r}") from None
        if not math.isfinite(parsed["density"]) or not 0 <= parsed["density"] <= 1:
            raise ConfigError(f"{path}: density must be in [0, 1]. Received: {row['density']!r}")
        out.append(parsed)
    return out


def format_table(rows, criterion="val_loss"):
    """The summary rows as an aligned text table, read at the early-stopping iteration of
    ``criterion`` (``supermask.early_stop``)."""
    def pct(x):
        return "   -  " if x is None else f"{100 * x:6.2f}"

    def its(x):
        return f"{'-' if x is None else x:>7}"

    lines = [f"early stop: {early_stop.DESCRIPTIONS[criterion]}",
             " level  % left   val@es  test@es  es iter | control: val@es  test@es  es iter"]
    for r in rows:
        lines.append(f" {r['level']:>5}  {r['percent_remaining']:6.2f}   {pct(r['val_accuracy_at_early_stop'])}   "
                     f"{pct(r['test_accuracy_at_early_stop'])}  {its(r['early_stop_iteration'])} |          "
                     f"{pct(r['control_val_accuracy_at_early_stop'])}   "
                     f"{pct(r['control_test_accuracy_at_early_stop'])}  {its(r['control_early_stop_iteration'])}")
    return "\n".join(lines)
