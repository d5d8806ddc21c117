"""Early stopping at the iteration of minimum validation loss (Frankle & Carbin 2019, App. C)."""

import json

import keras
import numpy as np
import pytest

from supermask import early_stop, paths, results, store
from supermask.settings import TrainConfig
from supermask.errors import ConfigError


def history(val_loss, val_accuracy, every=100):
    """Rows as the engine records them; test accuracy = 0.5 + iteration / 10**5 (to tell rows apart)."""
    return [{"iteration": i * every, "epoch": 0.0, "train_loss": None, "train_accuracy": None,
             "val_loss": vl, "val_accuracy": va, "test_loss": vl, "test_accuracy": 0.5 + i * every / 1e5}
            for i, (vl, va) in enumerate(zip(val_loss, val_accuracy))]


# The case: best accuracy at 1900, minimum loss at 1700 (iterations 0..2000).
LOSS = [2.3, *np.linspace(0.5, 0.10, 16), 0.08, 0.09, 0.095, 0.11]
ACC = [0.1, *np.linspace(0.8, 0.95, 16), 0.96, 0.965, 0.97, 0.969]


def test_the_paper_criterion_is_the_minimum_validation_loss_and_both_are_recorded():
    h = history(LOSS, ACC)
    assert early_stop.stop_row(h)[0]["iteration"] == 1700
    assert early_stop.stop_row(h, "val_accuracy")[0]["iteration"] == 1900
    s = early_stop.summarize(h)
    assert (s["early_stop"], s["early_stop_source"], s["early_stop_iteration"]) == ("val_loss", "val", 1700)
    assert s["test_accuracy_at_early_stop"] == pytest.approx(0.5 + 1700 / 1e5)
    assert s["val_accuracy_at_early_stop"] == pytest.approx(0.96) and s["val_loss_at_early_stop"] == 0.08
    assert s["best_val_accuracy"] == pytest.approx(0.97) and s["min_val_loss"] == 0.08
    assert s["by_criterion"]["val_accuracy"]["iteration"] == 1900
    assert s["by_criterion"]["val_loss"]["iteration"] == 1700
    assert early_stop.summarize(h, "val_accuracy")["early_stop_iteration"] == 1900


def test_ties_go_to_the_earliest_iteration_and_nan_is_never_chosen():
    h = history([1.0, 0.5, float("nan"), 0.5], [0.1, 0.9, 0.9, 0.9])
    assert early_stop.stop_row(h)[0]["iteration"] == 100
    assert early_stop.stop_row(h, "val_accuracy")[0]["iteration"] == 100


def test_without_validation_the_test_split_is_used_and_said():
    h = [{**r, "val_loss": None, "val_accuracy": None} for r in history(LOSS, ACC)]
    s = early_stop.summarize(h)
    assert s["early_stop_source"] == "test" and s["early_stop_iteration"] == 1700
    assert s["best_val_accuracy"] is None


def test_bad_histories_and_criteria_are_refused():
    with pytest.raises(ValueError, match="empty"):
        early_stop.summarize([])
    with pytest.raises(ValueError, match="not a number"):
        early_stop.summarize([{"iteration": 0, "val_loss": "0.3", "val_accuracy": 0.5}])
    with pytest.raises(ValueError, match="early_stop must be one of"):
        early_stop.summarize(history(LOSS, ACC), "val_acc")
    with pytest.raises(ConfigError, match="early_stop must be one of val_loss, val_accuracy"):
        TrainConfig(early_stop="loss")


def _old_experiment(root, criterion=None):
    """A finished two-level experiment written as before the criterion existed: summaries by best
    validation accuracy (1900), histories whose validation loss is lowest at 1700."""
    exp = root / "abc"
    hparams = {"model": "fc", "dataset": "mnist", "iterations": 2000, "eval_every": 100}
    if criterion:
        hparams["early_stop"] = criterion
    store.write_json(paths.hparams(exp), hparams)
    for level in (0, 1):
        folder = paths.level(paths.trial(exp, 0), level)
        for f in (folder, paths.control(folder)) if level else (folder,):
            store.write_json(paths.metrics(f), {
                "overall_density": 0.8 ** level, "history": history(LOSS, ACC),
                "summary": {"best_val_accuracy": 0.97, "early_stop_iteration": 1900,
                            "test_accuracy_at_early_stop": 0.519, "final_test_accuracy": 0.52}})
    return exp


def test_finished_experiments_are_read_at_the_new_criterion_without_retraining(tmp_path):
    exp = results.load_experiment(_old_experiment(tmp_path))
    assert exp.early_stop == "val_loss"
    rows = exp.trials[0]
    assert [r["early_stop_iteration"] for r in rows] == [1700, 1700]
    assert rows[1]["control_early_stop_iteration"] == 1700
    assert rows[0]["test_accuracy_at_early_stop"] == pytest.approx(0.517)
    assert exp.summary[1]["early_stop_iteration_mean"] == 1700
    table = results.format_aggregate(exp.summary, exp.early_stop)
    assert table.startswith("early stop: the iteration of minimum validation loss")
    # An experiment run with --early-stop val_accuracy reads back at its own criterion.
    acc = results.load_experiment(_old_experiment(tmp_path / "acc", "val_accuracy"))
    assert [r["early_stop_iteration"] for r in acc.trials[0]] == [1900, 1900]


@pytest.mark.parametrize("damage, says", [
    (lambda m: m.pop("history"), "lacks the run's history"),
    (lambda m: m["history"][3].update(val_loss="low"), "not a number"),
])
def test_a_level_with_a_damaged_history_is_one_clear_error(tmp_path, damage, says):
    exp = _old_experiment(tmp_path)
    path = paths.metrics(paths.level(paths.trial(exp, 0), 1))
    metrics = json.loads(path.read_text())
    damage(metrics)
    path.write_text(json.dumps(metrics))
    with pytest.raises(store.CorruptFileError, match=says) as info:
        results.load_experiment(exp)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="backend-free summary: run once, on JAX")
def test_a_lottery_records_both_criteria_and_prints_the_paper_one(tmp_path, small_mnist, capsys):
    from supermask import lottery

    rows = lottery.run(model="fc", data=small_mnist, levels=1, iterations=300, eval_every=50, root=tmp_path,
                       verbose=1)
    out = capsys.readouterr().out
    assert "early stop: the iteration of minimum validation loss (Frankle & Carbin 2019, App. C)" in out
    assert "val@es  test@es  es iter" in out
    exp = results.find_experiments(tmp_path)[0]
    assert json.loads(paths.hparams(exp).read_text())["early_stop"] == "val_loss"
    metrics = json.loads(paths.metrics(paths.level(paths.trial(exp, 0), 1)).read_text())
    s, h = metrics["summary"], metrics["history"]
    assert s["early_stop"] == "val_loss" and set(s["by_criterion"]) == {"val_loss", "val_accuracy"}
    best = min(h, key=lambda r: (r["val_loss"], r["iteration"]))
    assert s["early_stop_iteration"] == best["iteration"] == rows[0][1]["early_stop_iteration"]
    assert s["test_accuracy_at_early_stop"] == best["test_accuracy"]
