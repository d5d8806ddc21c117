"""supermask.results (reading back, mean ± std over trials) and supermask.report (figures)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from supermask import lottery, paths, report, results
from supermask.config import LotteryConfig
from supermask.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def mnist_dir():
    from tests.conftest import shared_data_dir

    return str(shared_data_dir() / "mnist")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, mnist):
    """A tiny real lottery experiment on MNIST: 2 trials, 2 levels, controls."""
    root = tmp_path_factory.mktemp("lottery")
    config = LotteryConfig(iterations=60, eval_every=20, levels=2, rate_fc=0.5, rate_output=0.25)
    lottery.run(config, root, trials=2, data_dir=mnist_dir(), verbose=0)
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


def own_values(experiment_dir, level, key, control=False):
    """``key`` of a level's summary for each trial, read straight from its metrics.json."""
    values = []
    for trial in sorted(experiment_dir.glob("trial_*")):
        folder = paths.level(trial, level)
        folder = paths.control(folder) if control else folder
        values.append(json.loads(paths.metrics(folder).read_text())["summary"][key])
    return values


def test_experiment_summary_is_the_mean_and_std_of_the_trials(experiment):
    with open(paths.experiment_summary(experiment), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["level"]) for r in rows] == [0, 1, 2]
    for row in rows:
        level = int(row["level"])
        assert row["trials"] == "2" and row["seeds"] == "0 1"
        for key, control in (("test_accuracy_at_early_stop", False), ("early_stop_iteration", False),
                             ("test_accuracy_at_early_stop", True)):
            if control and level == 0:
                assert row[f"control_{key}_mean"] == ""  # level 0 has no control
                continue
            values = own_values(experiment, level, key, control)
            name = f"control_{key}" if control else key
            assert float(row[f"{name}_mean"]) == pytest.approx(np.mean(values), abs=1e-12)
            assert float(row[f"{name}_std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    # Two trials that share nothing but the hyperparameters: their results differ.
    assert own_values(experiment, 2, "test_accuracy_at_early_stop")[0] != \
        own_values(experiment, 2, "test_accuracy_at_early_stop")[1]


def test_lottery_prints_the_mean_and_std_table(tmp_path, mnist, capsys):
    config = LotteryConfig(iterations=20, eval_every=10, levels=1, control=False)
    lottery.run(config, tmp_path, trials=2, data_dir=mnist_dir(), verbose=1)
    out = capsys.readouterr().out
    assert "Mean ± std over 2 trials (seeds 0, 1;" in out
    assert "python -m supermask.report" in out
    table = out.split("Mean ± std over 2 trials")[1].splitlines()
    assert table[1].split()[:3] == ["level", "%", "left"] and table[2].split()[0] == "0"


def test_report_of_an_experiment(experiment, tmp_path):
    out, files = report.report(experiment, tmp_path / "rep")
    assert set(files) == {"accuracy_vs_remaining.png", "early_stop_vs_remaining.png",
                          f"training_curves_{experiment.name}.png", "report.md"}
    for name in files[:-1]:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    text = (out / "report.md").read_text()
    for level in (0, 1, 2):
        values = own_values(experiment, level, "test_accuracy_at_early_stop")
        cell = f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}"
        assert f"| {level} | " in text and cell in text
    # A root holding the experiment reports it too; rerunning replaces the report as a whole.
    (out / "stale.png").write_bytes(b"x")
    out2, _ = report.report(experiment.parent, out)
    assert out2 == out and not (out / "stale.png").exists()


def test_report_of_an_init_sweep_csv(tmp_path):
    source = ROOT / "results" / "init_sweep_fc_mnist.csv"
    out, files = report.report(source, tmp_path / "sweep")
    assert files == ["init_sweep.png", "report.md"]
    assert (out / "init_sweep.png").read_bytes().startswith(PNG)
    rows = results.read_init_sweep(source)
    best = max(rows, key=lambda r: r["accuracy"])
    first = (out / "report.md").read_text().split("| ---: |")[1].splitlines()[1]
    assert first == f"| {best['criterion']} | {best['mask1']} | {100 * best['density']:.1f} | " \
                    f"{100 * best['accuracy']:.2f} |"


def test_report_of_a_supermask_run(tmp_path, mnist):
    from supermask import train_supermask

    run = tmp_path / "sm"
    train_supermask.main(["--iterations", "20", "--eval-every", "10", "--eval-samples", "2", "--validation-size",
                          "1000", "--data-dir", mnist_dir(), "--quiet", "--out", str(run)])
    out, files = report.report(run)
    assert out == run / "report" and files == ["accuracy_over_training.png", "mask_density.png", "report.md"]
    metrics = json.loads(paths.metrics(run).read_text())
    assert f"{100 * metrics['density']['total']['inference']:.2f} %" in (out / "report.md").read_text()


def test_bad_paths_give_one_clear_error(tmp_path, experiment):
    with pytest.raises(ConfigError, match="does not exist"):
        report.report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no lottery experiment, run folder or init-sweep CSV"):
        report.report(tmp_path / "empty")
    with pytest.raises(ConfigError, match=f"lies inside the experiment {experiment.resolve()}: report that folder"):
        report.report(paths.level(paths.trial(experiment, 0), 0))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="is not an init-sweep CSV: it needs the columns"):
        report.report(tmp_path / "other.csv")
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds something other than a report; it will not be replaced"):
        report.report(experiment, keep)
    assert (keep / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="no hparams.json"):
        results.load_experiment(tmp_path / "empty")


def test_aggregate_of_uneven_trials():
    trials = {3: [{"level": 0, "percent_remaining": 100.0, "test_accuracy_at_early_stop": 0.9}],
              5: [{"level": 0, "percent_remaining": 100.0, "test_accuracy_at_early_stop": 0.8},
                  {"level": 1, "percent_remaining": 50.0, "test_accuracy_at_early_stop": 0.85}]}
    rows = results.aggregate(trials)
    assert [(r["level"], r["trials"], r["seeds"]) for r in rows] == [(0, 2, [3, 5]), (1, 1, [5])]
    assert rows[0]["test_accuracy_at_early_stop_mean"] == pytest.approx(0.85)
    assert rows[0]["test_accuracy_at_early_stop_std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert rows[1]["test_accuracy_at_early_stop_std"] == 0.0
    assert rows[1]["control_best_val_accuracy_mean"] is None
