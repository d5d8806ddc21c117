"""Instability analysis: the path maths, the path on any model (BatchNorm both ways), the run and its files,
resume, the command line, and the lottery-experiment mode."""

import json
import os

import keras
import numpy as np
import pytest

from supermask import instability, lottery, paths
from supermask import masks as M
from supermask.errors import ConfigError
from supermask.init_sweep import evaluate
from supermask.instability import runner
from supermask.instability.__main__ import main
from supermask.models import build
from supermask.settings import InstabilityConfig, config_hash
from tests.conftest import on_jax


# --- core maths (backend-free) ------------------------------------------------------------------
@on_jax
def test_alphas_include_both_endpoints_evenly_spaced():
    np.testing.assert_allclose(instability.alphas(5), [0, 0.25, 0.5, 0.75, 1])
    assert instability.alphas(30)[0] == 0 and instability.alphas(30)[-1] == 1 and len(instability.alphas(30)) == 30
    with pytest.raises(ValueError):
        instability.alphas(1)


@on_jax
def test_interpolate_endpoints_exact_midpoint_and_integer_variables_from_the_first():
    w1 = {"a/kernel": np.array([[1.0, -2.0]], np.float32), "seed/state": np.array([7, 1], np.int64)}
    w2 = {"a/kernel": np.array([[3.0, 2.0]], np.float32), "seed/state": np.array([9, 9], np.int64)}
    np.testing.assert_array_equal(instability.interpolate(w1, w2, 0.0)["a/kernel"], w1["a/kernel"])
    np.testing.assert_array_equal(instability.interpolate(w1, w2, 1.0)["a/kernel"], w2["a/kernel"])
    mid = instability.interpolate(w1, w2, 0.5)
    np.testing.assert_allclose(mid["a/kernel"], [[2.0, 0.0]])
    assert mid["a/kernel"].dtype == np.float32
    np.testing.assert_array_equal(mid["seed/state"], [7, 1])
    np.testing.assert_allclose(instability.interpolate(w1, w2, 0.25)["a/kernel"], [[1.5, -1.0]])
    with pytest.raises(ValueError, match="different variables"):
        instability.interpolate(w1, {"a/kernel": w2["a/kernel"]}, 0.5)


@on_jax
def test_instability_is_the_barrier_above_the_endpoints_mean():
    assert instability.instability([2.0, 5.0, 9.0, 4.0]) == pytest.approx(9.0 - 3.0)
    assert instability.instability([3.0, 1.0, 3.0]) == 0.0  # a path below its endpoints has no barrier
    assert instability.instability([3.0, 2.0, 1.0]) == pytest.approx(1.0)  # the higher endpoint is above the mean
    assert instability.instability([1.0, 1.0]) == 0.0
    a, b = instability.copy_seeds(0, 100)
    assert a != b and (a, b) == instability.copy_seeds(0, 100) and (a, b) != instability.copy_seeds(0, 200)


@on_jax
def test_settings_spellings_bad_values_and_the_seed_outside_the_hash():
    c = InstabilityConfig(ks="500, 0,100,100", splits="train,test", points=5)
    assert c.ks == (0, 100, 500) and c.splits == ("test", "train")
    assert config_hash(c) == config_hash(InstabilityConfig(ks=[0, 100, 500], splits=("test", "train"), points=5,
                                                           seed=3))
    assert config_hash(c) != config_hash(InstabilityConfig(ks=[0, 100], points=5))
    for bad, match in [(dict(ks="0,-5"), "ks must be"), (dict(points=2), "points must"), (dict(bn="x"), "bn must"),
                       (dict(splits="val"), "splits must"), (dict(levels="1"), "pass --experiment"),
                       (dict(experiment="x", iterations=5), "drop iterations"),
                       (dict(experiment="x", ks="5"), "drop --ks")]:
        with pytest.raises(ConfigError, match=match):
            InstabilityConfig(**bad)


# --- the path on any model, every backend ----------------------------------------------------------
def test_linear_path_endpoints_equal_the_networks_and_masks_stay(small_mnist):
    model = build("fc", small_mnist.input_shape, small_mnist.num_classes, seed=0)
    masks = M.get_masks(model)
    masks["fc1"][:, ::2] = False
    M.set_masks(model, masks)
    wa = M.get_weights(model)
    wb = M.get_weights(build("fc", small_mnist.input_shape, small_mnist.num_classes, seed=1))
    path = instability.linear_path(model, wa, wb, small_mnist, points=3)
    x, y = small_mnist.x_test, small_mnist.y_test
    np.testing.assert_allclose(path.alphas, [0, 0.5, 1])
    M.set_weights(model, wb)
    assert path.errors[-1] == pytest.approx(100 * (1 - evaluate(model, x, y, 1000)[1]))
    M.set_weights(model, wa)  # the path restored the model; this checks alpha 0 on the same masked model
    assert path.errors[0] == pytest.approx(100 * (1 - evaluate(model, x, y, 1000)[1]))
    assert path.instability == pytest.approx(path.errors.max() - (path.errors[0] + path.errors[-1]) / 2)
    np.testing.assert_array_equal(M.get_masks(model)["fc1"], masks["fc1"])
    np.testing.assert_array_equal(M.get_weights(model)["fc1/kernel"], wa["fc1/kernel"])


def _bn_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(16, name="hidden"),
                             keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
                             keras.layers.Dense(10, name="out")])


def test_batchnorm_recompute_reestimates_the_statistics_and_interpolate_does_not(small_mnist):
    model, other = _bn_model(0), _bn_model(1)
    bn = instability.batchnorm_layers(model)[0]
    bn.moving_mean.assign(np.full(16, 0.3, np.float32))
    wa, wb = M.get_weights(model), M.get_weights(other)
    x = small_mnist.x_train[:2000]
    used = instability.recompute_batchnorm(model, x, batch_size=500)
    assert used == 4
    dense = model.layers[1]
    h = x.reshape(len(x), -1) @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    batches = h.reshape(4, 500, 16)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), batches.mean(axis=1).mean(axis=0), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), batches.var(axis=1).mean(axis=0), rtol=1e-3, atol=1e-3)
    assert bn.momentum == pytest.approx(0.99)  # restored
    M.set_weights(model, wa)
    data = (small_mnist.x_test[:500], small_mnist.y_test[:500])
    kept = instability.linear_path(model, wa, wb, data, points=3, bn="interpolate")
    assert kept.errors[0] == pytest.approx(100 * (1 - evaluate(model, *data, 1000)[1]))
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), wa[f"{bn.name}/moving_mean"])
    redone = instability.linear_path(model, wa, wb, data, points=3, bn="recompute")
    assert redone.errors[0] != kept.errors[0]  # alpha 0 with re-estimated statistics (mean 0.3 was wrong)
    with pytest.raises(ConfigError, match="bn must be"):
        instability.linear_path(model, wa, wb, data, points=3, bn="other")


# --- the run, every backend ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def measured(small_mnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("instability")
    result = instability.run(root=root, data=small_mnist, trials=2, ks="0,10", iterations=20, eval_every=20,
                             points=5, splits="test,train", train_examples=500, verbose=0)
    return root, result


def test_run_writes_points_tables_figures_and_summary(measured):
    root, result = measured
    assert result.path == runner.folder(root, InstabilityConfig(ks="0,10", iterations=20, eval_every=20, points=5,
                                                                splits="test,train", train_examples=500,
                                                                dataset="mnist", validation_size=500,
                                                                batch_size=60, learning_rate=0.0012))
    for seed in (0, 1):
        for k in (0, 10):
            assert paths.instability_point(result.path, seed, k).is_file()
    assert len(result.rows) == 2 * 2 * 2 * 5  # seeds x ks x splits x points
    assert {(r["k"], r["seeds"]) for r in result.summary} == {(0, 2), (10, 2)}
    for row in result.summary:
        assert row["instability_test"] >= 0 and row["remaining"] == 100.0
    assert instability.rows(result.path) == result.summary
    assert instability.is_finished(result.path)
    report = paths.report_dir(result.path)
    assert {"report.md", "instability.png", "error_vs_alpha_test.png", "error_vs_alpha_train.png"} <= {
        p.name for p in report.iterdir()}
    hparams = json.loads(paths.hparams(result.path).read_text())
    assert hparams["total_iterations"] == 20 and "seed" not in hparams


def test_rerun_trains_nothing(measured, small_mnist, monkeypatch):
    root, result = measured
    calls = []
    real = runner.train_many
    monkeypatch.setattr(runner, "train_many",
                        lambda models, *a, **k: calls.append(len(models)) or real(models, *a, **k))
    again = instability.run(root=root, data=small_mnist, trials=2, ks="0,10", iterations=20, eval_every=20, points=5,
                            splits="test,train", train_examples=500, verbose=0)
    assert calls == [] and again.summary == result.summary


# --- command line and the lottery mode (backend-free plumbing: once) ---------------------------------
@on_jax
def test_cli_runs_and_bad_input_is_one_line(tmp_path, capsys, mnist):
    data_dir = os.environ["SUPERMASK_DATA"]
    result = main(["--model", "fc", "--k", "0", "--iterations", "10", "--eval-every", "10", "--points", "3",
                   "--root", str(tmp_path), "--data-dir", data_dir])
    out = capsys.readouterr().out
    assert "instability test" in out and "| k |" in out and result.summary[0]["k"] == 0
    from supermask.__main__ import main as supermask_main
    for argv, match in [(["--ks", "0,x"], "ks must be"), (["--points", "1"], "points must"),
                        (["--ks", "50", "--iterations", "20"], "below the 20 training"),
                        (["--experiment", str(tmp_path)], "must be a lottery experiment")]:
        with pytest.raises(SystemExit) as exc:
            supermask_main(["instability", *argv, "--root", str(tmp_path), "--data-dir", data_dir])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1


@on_jax
def test_lottery_experiment_levels_are_measured_with_their_masks(tmp_path, small_mnist):
    lottery.run(root=tmp_path / "lottery", data=small_mnist, levels=1, iterations=20, eval_every=10, control=False,
                verbose=0)
    experiment = next((tmp_path / "lottery").iterdir())
    result = instability.run(root=tmp_path / "inst", data=small_mnist, experiment=str(experiment), points=3,
                             trials=None, verbose=0)
    assert [(r["level"], r["k"]) for r in result.summary] == [(0, 0), (1, 0)]
    assert result.summary[0]["remaining"] == 100.0 and result.summary[1]["remaining"] < 90.0
    record = json.loads(paths.instability_point(result.path, 0, 0, level=1).read_text())
    assert len(record["splits"]["test"]["errors"]) == 3
    with pytest.raises(ConfigError, match="not finished"):
        instability.run(root=tmp_path / "inst", data=small_mnist, experiment=str(experiment), levels="5", verbose=0)
