"""Early stopping: which recorded iteration a run is read at, and its summary.

Frankle & Carbin 2019, Appendix C: "The specific criterion we employ is the iteration of
minimum validation loss"; test accuracy is read at that iteration. That is the default
criterion here (``"val_loss"``); ``"val_accuracy"`` (the iteration of best validation
accuracy) is the alternative. Both are pure functions of a run's history (the rows
``supermask.engine`` records every ``eval_every`` iterations), so a finished run's summary can
be recomputed from its ``metrics.json`` without retraining (``supermask.results`` does).

Ties go to the earliest iteration. Without a validation split (``validation_size=0``) the
history holds no validation metrics and the summary falls back to the test split's loss or
accuracy (stated in ``source``: "test"); a stopping point chosen on the test set is optimistic,
so use a validation split for any reported number.
"""

import math

CRITERIA = ("val_loss", "val_accuracy")
DEFAULT = "val_loss"
SHORT = {"val_loss": "min. val. loss", "val_accuracy": "max. val. accuracy"}
DESCRIPTIONS = {"val_loss": "the iteration of minimum validation loss (Frankle & Carbin 2019, App. C)",
                "val_accuracy": "the iteration of maximum validation accuracy"}


def check_criterion(criterion):
    """``criterion`` if it is one of ``CRITERIA``, else ValueError naming the valid ones."""
    if criterion not in CRITERIA:
        raise ValueError(f"early_stop must be one of {', '.join(CRITERIA)}. Received: early_stop={criterion!r}")
    return criterion


def _number(row, key):
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"history row at iteration {row.get('iteration')!r} holds {key}={value!r}, not a number")
    return float(value)


def stop_row(history, criterion=DEFAULT):
    """The history row a run is read at under ``criterion`` (see the module docstring).

    Args:
        history: list of dicts with ``iteration`` and ``val_loss``, ``val_accuracy``,
            ``test_loss``, ``test_accuracy`` (fractions; None where not recorded).
        criterion: ``"val_loss"`` (minimum) or ``"val_accuracy"`` (maximum).

    Returns:
        ``(row, source)``: the chosen row and ``"val"`` or ``"test"`` (the split it was chosen on).
        Rows whose metric is NaN are never chosen. ValueError for an empty history or a
        non-numeric value.
    """
    check_criterion(criterion)
    if not history:
        raise ValueError("the history is empty: no recorded evaluation to stop at")
    metric = criterion.split("_", 1)[1]  # "loss" or "accuracy"
    source = "val" if any(_number(r, f"val_{metric}") is not None for r in history) else "test"
    key = f"{source}_{metric}"
    rows = [r for r in history if _number(r, key) is not None and not math.isnan(_number(r, key))]
    if not rows:
        raise ValueError(f"no history row holds a number for {key}")
    sign = 1.0 if metric == "loss" else -1.0  # minimise the loss, maximise the accuracy
    return min(rows, key=lambda r: (sign * _number(r, key), _number(r, "iteration"))), source


def _at(row):
    return {"iteration": int(row["iteration"]), "val_loss": row.get("val_loss"),
            "val_accuracy": row.get("val_accuracy"), "test_loss": row.get("test_loss"),
            "test_accuracy": row.get("test_accuracy")}


def summarize(history, criterion=DEFAULT):
    """The summary of a run's history under ``criterion``.

    Keys (accuracies are fractions, losses the mean cross-entropy in nats, iterations
    optimiser steps):

    - ``early_stop``: the criterion; ``early_stop_source``: "val" (or "test" without a
      validation split);
    - ``early_stop_iteration`` and ``test_accuracy_at_early_stop``, ``val_accuracy_at_early_stop``,
      ``val_loss_at_early_stop``: the run read at the stopping iteration;
    - ``best_val_accuracy`` and ``min_val_loss``: extremes over the whole history;
    - ``final_test_accuracy``, ``final_val_accuracy``: the last record;
    - ``by_criterion``: ``{criterion: {iteration, val_loss, val_accuracy, test_loss,
      test_accuracy}}`` for every criterion, so both stopping points are on record.
    """
    row, source = stop_row(history, criterion)
    by = {name: _at(stop_row(history, name)[0]) for name in CRITERIA}
    val_acc = [_number(r, "val_accuracy") for r in history if _number(r, "val_accuracy") is not None]
    val_loss = [_number(r, "val_loss") for r in history if _number(r, "val_loss") is not None]
    last = history[-1]
    return {
        "early_stop": criterion,
        "early_stop_source": source,
        "early_stop_iteration": int(row["iteration"]),
        "test_accuracy_at_early_stop": row.get("test_accuracy"),
        "val_accuracy_at_early_stop": row.get("val_accuracy"),
        "val_loss_at_early_stop": row.get("val_loss"),
        "best_val_accuracy": max(val_acc) if val_acc else None,
        "min_val_loss": min(val_loss) if val_loss else None,
        "final_test_accuracy": last.get("test_accuracy"),
        "final_val_accuracy": last.get("val_accuracy"),
        "by_criterion": by,
    }
