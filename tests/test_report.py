"""supermask.results (reading back, mean ± std over trials) and supermask.report (figures)."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from supermask import lottery, paths, report, results
from supermask.settings import LotteryConfig
from supermask.errors import ConfigError, SupermaskError
from tests.conftest import once

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def mnist_dir():
    from tests.conftest import shared_data_dir

    return str(shared_data_dir() / "mnist")


# Reading back and drawing are backend-free: the whole module runs once, in the torch pass.
pytestmark = once


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_lottery_prints_the_mean_and_std_table(tmp_path, mnist, capsys):
    config = LotteryConfig(iterations=20, eval_every=10, levels=1, control=False)
    lottery.run(config, tmp_path, trials=2, data_dir=mnist_dir(), verbose=1)
    out = capsys.readouterr().out
    assert "Mean ± std over 2 trials (seeds 0, 1;" in out
    assert "python -m supermask.report" in out
    table = out.split("Mean ± std over 2 trials")[1].splitlines()
    header = next(i for i, line in enumerate(table) if line.split()[:1] == ["level"])
    assert table[header].split()[:3] == ["level", "%", "left"] and table[header + 1].split()[0] == "0"


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


@pytest.mark.slow
def test_report_of_a_supermask_run(tmp_path, mnist):
    from supermask.train_supermask import __main__ as supermask_cli

    run = tmp_path / "sm"
    supermask_cli.main(["--iterations", "20", "--eval-every", "10", "--eval-samples", "2", "--validation-size",
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


# --- small fake experiments (no training): what the report draws and writes ------------------------


def fake_metrics(folder, remaining, accuracy=0.9, iterations=100, history=None):
    """A finished level (or control) folder: metrics.json as the lottery writes it."""
    folder.mkdir(parents=True)
    if history is None:
        history = [{"iteration": it, "epoch": it / 1000, "train_accuracy": None if it == 0 else accuracy,
                    "train_loss": 0.5, "val_accuracy": accuracy * it / iterations,
                    "val_loss": 1 - accuracy * it / iterations, "test_accuracy": accuracy * it / iterations,
                    "test_loss": 1 - accuracy * it / iterations} for it in range(0, iterations + 1, iterations // 4)]
    summary = {"best_val_accuracy": accuracy, "early_stop_iteration": iterations, "final_test_accuracy": accuracy,
               "test_accuracy_at_early_stop": accuracy}
    paths.metrics(folder).write_text(json.dumps({"overall_density": remaining / 100, "history": history,
                                                 "summary": summary}))


def fake_experiment(folder, remaining=(100.0, 80.0, 64.0), seeds=(0,), **hparams):
    """An experiment folder holding hparams.json and one finished level per value of ``remaining``."""
    folder.mkdir(parents=True)
    h = {"model": "fc", "dataset": "mnist", "criterion": "large_final", "iterations": 100, "batch_size": 60,
         "learning_rate": 0.0012, "pruning": None, "rate_fc": 0.2, "rate_output": 0.1, **hparams}
    paths.hparams(folder).write_text(json.dumps(h, sort_keys=True))
    for seed in seeds:
        for level, pct in enumerate(remaining):
            level_dir = paths.level(paths.trial(folder, seed), level)
            fake_metrics(level_dir, pct, accuracy=0.9 + 0.01 * level + 0.001 * seed)
            if level:
                fake_metrics(paths.control(level_dir), pct, accuracy=0.8)
    return folder


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report saves, by file name (every figure goes through ``drawing.save``)."""
    from supermask.report import drawing

    figures = {}
    save = drawing.save

    def record(fig, folder, name, **kwargs):
        figures[save(fig, folder, name, **kwargs)] = fig
        return name

    monkeypatch.setattr(drawing, "save", record)
    return figures


def legend_texts(fig):
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [t.get_text().replace("\n", " ") for legend in legends if legend for t in legend.get_texts()]


def test_experiment_labels_name_what_differs():
    base = {"model": "fc", "dataset": "mnist", "criterion": "large_final", "iterations": 500, "rate_fc": 0.2,
            "pruning": None, "layer_rates": []}
    hparams = [base, {**base, "iterations": 1000}, {**base, "rate_fc": 0.3}, {**base, "pruning": "global"}, dict(base)]
    labels = report.experiment_labels(hparams, ["a/1f2e", "b/1f2e", "c/77aa", "d/88bb", "e/99cc"])
    assert labels == ["fc/mnist · iterations=500 · pruning=default · rate_fc=0.2 · a/1f2e",
                      "fc/mnist · iterations=1000 · pruning=default · rate_fc=0.2",
                      "fc/mnist · iterations=500 · pruning=default · rate_fc=0.3",
                      "fc/mnist · iterations=500 · pruning=global · rate_fc=0.2",
                      "fc/mnist · iterations=500 · pruning=default · rate_fc=0.2 · e/99cc"]
    # Model and dataset always show; an absent early_stop is val_loss, the criterion that replaced it.
    assert report.experiment_labels([{"model": "fc", "dataset": "mnist"}, {"model": "conv2", "dataset": "cifar10",
                                                                            "early_stop": "val_loss"}]) == \
        ["fc/mnist", "conv2/cifar10"]
    assert report.experiment_labels([{"model": "fc", "layer_rates": [["fc1", 0.5]]}, {"model": "fc"}]) == \
        ["fc/? · layer_rates=fc1:0.5", "fc/? · layer_rates=default"]
    assert report.experiment_labels([base]) == ["fc/mnist"]


def test_experiments_with_the_same_hash_under_different_roots_get_their_own_files(tmp_path, capsys, drawn):
    root = tmp_path / "root"
    fake_experiment(root / "a" / "1f2e", iterations=100)
    fake_experiment(root / "b" / "1f2e", iterations=200)
    fake_experiment(root / "b" / "77aa", iterations=300)
    out = report.main([str(root), "--out", str(tmp_path / "rep")])
    printed = capsys.readouterr().out.splitlines()
    written = sorted(p.name for p in out.iterdir())
    assert printed[0] == f"Wrote {len(written)} files to {out}:"
    assert sorted(Path(line.strip()).name for line in printed[1:]) == written
    assert {"training_curves_a_1f2e.png", "training_curves_b_1f2e.png", "training_curves_b_77aa.png"} <= set(written)
    text = (out / "report.md").read_text()
    for name in ("a_1f2e", "b_1f2e", "b_77aa"):
        assert f"(training_curves_{name}.png)" in text
    # Each curve is labelled by what differs, and each figure names its experiment in the title.
    assert legend_texts(drawn["accuracy_vs_remaining.png"])[::2] == \
        [f"fc/mnist · iterations={n}" for n in (100, 200, 300)]
    assert "iterations=200" in drawn["training_curves_b_1f2e.png"].axes[0].get_title()
    assert "## fc/mnist · iterations=300" in text


def test_file_names_stay_unique_after_sanitising():
    assert report.file_stems(["a_b/x", "a/b_x", "c d/é"]) == ["a_b_x", "a_b_x_2", "c_d_"]
    assert report.experiment_names([Path("/r/a/h"), Path("/r/b/h")]) == ["a/h", "b/h"]
    assert report.experiment_names([Path("/r/a/h")]) == ["h"]


def test_labels_starting_with_an_underscore_show_in_the_legend(tmp_path, drawn):
    fake_experiment(tmp_path / "root" / "own", model="__main__:build")
    fake_experiment(tmp_path / "root" / "fc")
    out, _ = report.report(tmp_path / "root", tmp_path / "rep")
    labels = legend_texts(drawn["accuracy_vs_remaining.png"])
    assert labels[:2] == ["fc/mnist", "fc/mnist, random reinit"]
    assert labels[2:] == ["__main__:build/mnist", "__main__:build/mnist, random reinit"]
    assert "\n## \\_\\_main\\_\\_:build/mnist\n" in (out / "report.md").read_text()  # not a bold "main"
    history = [{"iteration": i, "test_accuracy": 0.5} for i in (0, 50, 100)]
    runs = [({}, {"epochs": 1, "iterations": 100, "history": history})]
    report.runs_figure({"_private": runs}, tmp_path, "runs.png", "runs")
    assert legend_texts(drawn["runs.png"]) == ["_private (1 run)"]


def test_remaining_ticks_come_from_the_data(tmp_path, drawn):
    assert report.remaining_ticks([100, 80, 64, 80]) == [100, 80, 64]
    ticks = report.remaining_ticks([100 * 0.8 ** level for level in range(31)])
    assert ticks[0] == 100 and ticks[-1] == pytest.approx(100 * 0.8 ** 30) and 5 <= len(ticks) <= 9
    assert all(a / b >= 10 ** (np.log10(ticks[0] / ticks[-1]) / 8) for a, b in zip(ticks, ticks[1:]))
    assert report.remaining_ticks([100]) == [100]
    # Global pruning at 20 % a level for two levels: the old fixed list showed only "100".
    report.report(fake_experiment(tmp_path / "exp", remaining=(100.0, 80.0, 64.0), pruning="global"), tmp_path / "r")
    for name in ("accuracy_vs_remaining.png", "early_stop_vs_remaining.png"):
        ax = drawn[name].axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "80", "64"]
    labels = [report.tick_label(v) for v in (100.0, 51.2, 7.0, 0.2863, 0.0123)]
    assert labels == ["100", "51.2", "7", "0.29", "0.012"]


def test_long_titles_are_wrapped_inside_the_figure(tmp_path, drawn):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    model = "my_project.models.a_rather_long_module_name:build_the_wide_residual_network"
    report.report(fake_experiment(tmp_path / "exp", model=model, dataset="cifar10"), tmp_path / "r")
    assert len(drawn) == 3
    for name, fig in drawn.items():
        renderer = FigureCanvasAgg(fig).get_renderer()  # the layout as saved (pyplot let the figure go)
        title = fig.axes[0].title
        assert "\n" in title.get_text() and model in title.get_text().replace("\n", " ")
        box = title.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1, name


@pytest.mark.parametrize("fmt, magic", [("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_report_formats(tmp_path, fmt, magic):
    exp = fake_experiment(tmp_path / "exp")
    out, files = report.report(exp, tmp_path / fmt, fmt=fmt)
    assert files == [f"accuracy_vs_remaining.{fmt}", f"early_stop_vs_remaining.{fmt}",
                     f"training_curves_exp.{fmt}", "report.md"]
    for name in files[:-1]:
        assert (out / name).read_bytes().startswith(magic)
    text = (out / "report.md").read_text()
    assert f"(accuracy_vs_remaining.{fmt})" in text and f"(training_curves_exp.{fmt})" in text and ".png" not in text
    # A run folder and an init sweep take the format too.
    out, files = report.report(ROOT / "results" / "init_sweep_fc_mnist.csv", tmp_path / f"sweep_{fmt}", fmt=fmt)
    assert files == [f"init_sweep.{fmt}", "report.md"] and (out / files[0]).read_bytes().startswith(magic)


def test_other_formats_are_refused_in_one_line(tmp_path, capsys):
    from supermask.cli import run_main

    exp = fake_experiment(tmp_path / "exp")
    with pytest.raises(ConfigError, match=r"format must be one of png, pdf, svg. Received: format='jpg'"):
        report.report(exp, tmp_path / "r", fmt="jpg")
    with pytest.raises(SystemExit) as exit_:
        run_main(report.main, [str(exp), "--format", "jpg"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and "invalid choice: 'jpg'" in err
    assert not (exp / "report").exists()


def corrupt(experiment_dir, level, change, control=False):
    folder = paths.level(paths.trial(experiment_dir, 0), level)
    path = paths.metrics(paths.control(folder) if control else folder)
    metrics = json.loads(path.read_text())
    change(metrics)
    path.write_text(json.dumps(metrics))
    return path


def assert_one_line_error(capsys, argv, *fragments):
    from supermask.cli import run_main

    with pytest.raises(SystemExit) as exit_:
        run_main(report.main, argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err


def test_a_level_without_history_is_one_clear_error(tmp_path, capsys):
    exp = fake_experiment(tmp_path / "exp")
    path = corrupt(exp, 2, lambda m: m.pop("history"))
    with pytest.raises(SupermaskError, match="has no 'history'"):
        report.report(exp, tmp_path / "r")
    assert_one_line_error(capsys, [str(exp)], str(path), "has no 'history'")
    path = corrupt(exp, 2, lambda m: m.__setitem__("history", [1, 2]))
    assert_one_line_error(capsys, [str(exp)], str(path), "history[0] must be a record")


@pytest.mark.parametrize("where, change, message", [
    ("history", lambda m: m["history"][2].__setitem__("test_accuracy", "0.93%"),
     "history[2]['test_accuracy'] must be a number. Received: '0.93%'"),
    ("summary", lambda m: m["summary"].__setitem__("test_accuracy_at_early_stop", "high"),
     "summary['test_accuracy_at_early_stop'] must be a number. Received: 'high'"),
    ("density", lambda m: m.__setitem__("overall_density", "0.8"),
     "'overall_density' must be a number. Received: '0.8'"),
    ("control", lambda m: m["history"][1].__setitem__("iteration", "25"), "history[1] must be a record with a numeric"),
])
def test_a_level_with_strings_for_numbers_is_one_clear_error(tmp_path, capsys, where, change, message):
    exp = fake_experiment(tmp_path / "exp")
    path = corrupt(exp, 1, change, control=where == "control")
    with pytest.raises(SupermaskError, match=re.escape(message)):
        report.report(exp, tmp_path / "r")
    assert_one_line_error(capsys, [str(exp)], str(path), message)


def test_a_run_with_strings_for_numbers_is_one_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    fake_metrics(run, 100.0)
    paths.hparams(run).write_text(json.dumps({"model": "fc", "dataset": "mnist", "seed": 0}))
    corrupt_path = paths.metrics(run)
    metrics = json.loads(corrupt_path.read_text())
    metrics["summary"]["best_val_accuracy"] = "n/a"
    corrupt_path.write_text(json.dumps(metrics))
    assert_one_line_error(capsys, [str(run)], str(corrupt_path),
                          "summary['best_val_accuracy'] must be a number. Received: 'n/a'")


def test_report_states_the_early_stop_criterion(tmp_path, drawn):
    exp = fake_experiment(tmp_path / "old")  # no early_stop field: the minimum of the validation loss
    out, _ = report.report(exp, tmp_path / "r1")
    assert "Early stop (`early_stop = val_loss`): the iteration of minimum validation loss" in \
        (out / "report.md").read_text()
    assert drawn["early_stop_vs_remaining.png"].axes[0].get_ylabel() == "early-stop iteration (min. val. loss)"
    fake_experiment(tmp_path / "root" / "loss", early_stop="val_loss")
    fake_experiment(tmp_path / "root" / "acc", early_stop="val_accuracy")
    out, _ = report.report(tmp_path / "root", tmp_path / "r2")
    text = (out / "report.md").read_text()
    acc, loss = text.split("\n## ")[1:]
    assert acc.startswith("fc/mnist · early_stop=val_accuracy\n")
    assert "Early stop (`early_stop = val_accuracy`): the iteration of maximum validation accuracy" in acc
    assert loss.startswith("fc/mnist · early_stop=val_loss\n")
    assert "Early stop (`early_stop = val_loss`): the iteration of minimum validation loss" in loss
    assert drawn["early_stop_vs_remaining.png"].axes[0].get_ylabel() == \
        "early-stop iteration (max. val. accuracy / min. val. loss)"
    assert "best validation accuracy" not in text.lower()


def test_run_report_states_the_early_stop_criterion(tmp_path):
    run = tmp_path / "run"
    fake_metrics(run, 100.0)
    paths.hparams(run).write_text(json.dumps({"model": "fc", "dataset": "mnist", "seed": 0,
                                              "early_stop": "val_accuracy"}))
    out, _ = report.report(run)
    assert "Early stop (the iteration of maximum validation accuracy) at iteration 100" in \
        (out / "report.md").read_text()


def test_null_settings_of_older_folders_read_as_their_defaults(tmp_path):
    # Older hparams.json files store null for a setting left to its default: Adam, not "None lr".
    exp = fake_experiment(tmp_path / "old", optimizer=None, batch_size=None, learning_rate=0.0012)
    out, _ = report.report(exp, tmp_path / "r")
    text = (out / "report.md").read_text()
    assert "100 iterations per level, batch ?, adam lr 0.0012, pruning rates fc 0.2" in text
    assert "None" not in text and "reset" not in text
    fake_experiment(tmp_path / "sgd", optimizer="sgd")
    assert "batch 60, sgd lr 0.0012" in (report.report(tmp_path / "sgd", tmp_path / "r2")[0] / "report.md").read_text()
    # A seed of 0 is a value, not a missing one; a null model or seed is "?".
    run = tmp_path / "run"
    fake_metrics(run, 100.0)
    paths.hparams(run).write_text(json.dumps({"model": "fc", "dataset": None, "seed": 0, "learner": "bernoulli",
                                              "weights": None}))
    out, _ = report.report(run)
    assert (out / "report.md").read_text().startswith("# fc/? · supermask bernoulli, weights ? · seed 0\n")
    assert report.experiment_labels([{"model": None, "dataset": "mnist", "seed": 0},
                                     {"model": "fc", "dataset": "mnist", "seed": 1}]) == \
        ["?/mnist · seed=0", "fc/mnist · seed=1"]


def test_the_command_is_the_package_main(tmp_path):
    from supermask.report import __main__ as command

    assert report.main is command.main and report.build_parser is command.build_parser
    exp = fake_experiment(tmp_path / "exp")
    proc = subprocess.run([sys.executable, "-m", "supermask.report", str(exp), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr  # runpy's double import warns
    assert proc.stdout.splitlines()[0] == f"Wrote 4 files to {tmp_path / 'r'}:"
    proc = subprocess.run([sys.executable, "-m", "supermask.report", str(tmp_path / "missing")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == \
        f"error: {tmp_path / 'missing'} does not exist; give an experiment or run folder, a root of experiments, " \
        "or an init-sweep CSV."
