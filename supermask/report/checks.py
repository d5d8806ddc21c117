"""Checking what the report reads: each ``metrics.json`` holds numbers where numbers belong, so a
damaged file is one clear line naming it (and the command that rewrites it), not a traceback
from deep inside a figure."""

from pathlib import Path

from supermask import paths, store

SUMMARY_KEYS = ("best_val_accuracy", "test_accuracy_at_early_stop", "early_stop_iteration", "final_test_accuracy")
HISTORY_KEYS = ("epoch", "train_accuracy", "train_loss", "val_accuracy", "val_loss", "test_accuracy", "test_loss")


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v):
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_metrics(path, level=True):
    """``metrics.json`` at ``path``, read and checked for what is read from it: a non-empty
    ``history`` of records with numbers (or null) where numbers belong, numbers in its ``summary``
    and, for a lottery ``level``, an ``overall_density``. CorruptFileError naming the file and what
    is wrong, in one line."""
    metrics = store.read_json(path)
    level_dir = next((p for p in Path(path).parents if p.name.startswith("level_")), None)
    redo = f"the experiment with --redo-level {level_dir.name[6:]}" if level and level_dir else "that run"

    def fault(what):
        return store.CorruptFileError(f"{path} is corrupt: {what}. Rerun {redo}, then report again.", path)

    if not isinstance(metrics, dict):
        raise fault(f"expected a JSON object. Received: {type(metrics).__name__}")
    if "history" not in metrics:
        raise fault("it has no 'history' (the accuracies recorded during training)")
    history = metrics["history"]
    if not isinstance(history, list) or not history:
        raise fault(f"'history' must be a non-empty list of records. Received: {_short(history)}")
    for i, row in enumerate(history):
        if not isinstance(row, dict) or not _number(row.get("iteration")):
            raise fault(f"history[{i}] must be a record with a numeric 'iteration'. Received: {_short(row)}")
        for key in HISTORY_KEYS:
            if row.get(key) is not None and not _number(row[key]):
                raise fault(f"history[{i}][{key!r}] must be a number. Received: {_short(row[key])}")
    summary = metrics.get("summary", {})
    if not isinstance(summary, dict):
        raise fault(f"'summary' must be a JSON object. Received: {_short(summary)}")
    for key in SUMMARY_KEYS:
        if summary.get(key) is not None and not _number(summary[key]):
            raise fault(f"summary[{key!r}] must be a number. Received: {_short(summary[key])}")
    if level and not _number(metrics.get("overall_density")):
        raise fault(f"'overall_density' must be a number. Received: {_short(metrics.get('overall_density'))}")
    return metrics


def check_experiment(folder):
    """``check_metrics`` on every finished level (and control) of every trial of ``folder``."""
    for trial in sorted(Path(folder).glob("trial_*")):
        level = 0
        while paths.level(trial, level).is_dir():
            for run in (paths.level(trial, level), paths.control(paths.level(trial, level))):
                if run.is_dir():
                    check_metrics(paths.metrics(run))
            level += 1
