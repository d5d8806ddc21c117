"""Pruning at initialisation: the autodiff seam against a numpy reference, the scores (SNIP, GraSP,
SynFlow's conservation and schedule), the sanity checks, the runner (files, rows, resume), IMP rows,
the command line."""

import csv
import json

import keras
import numpy as np
import pytest

from supermask import convert, pruning, store
from supermask.engine import autodiff
from supermask.errors import ConfigError
from supermask.masks import get_weights
from supermask.models import build
from supermask.prune_init import (ScoreOptions, grasp, invert, masks_at_init, prune_to, reinit, run, shuffle,
                                  snip, synflow_scores)
from supermask.settings import PruneInitConfig
from tests.conftest import on_jax

# --- a tiny 2-layer tanh net and its numpy reference (float64) ------------------------------


def _tiny(seed=0):
    keras.utils.set_random_seed(seed)
    x = keras.Input((3,))
    h = keras.layers.Dense(4, activation="tanh", name="h", bias_initializer="glorot_uniform")(x)
    return convert.masked(keras.Model(x, keras.layers.Dense(3, name="out")(h)))


def _forward(w, x, T=1.0):
    a = x @ w["h/kernel"] + w["h/bias"]
    h = np.tanh(a)
    z = (h @ w["out/kernel"] + w["out/bias"]) / T
    return a, h, z


def _loss(w, x, y, T=1.0):
    z = _forward(w, x, T)[2]
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def _grad(w, x, y, T=1.0):
    """Hand-written backward pass of the mean cross-entropy."""
    a, h, z = _forward(w, x, T)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - np.eye(3)[y]) / len(y) / T
    dh = dz @ w["out/kernel"].T
    da = dh * (1 - h ** 2)
    return {"out/kernel": h.T @ dz, "out/bias": dz.sum(0), "h/kernel": x.T @ da, "h/bias": da.sum(0)}


def _hvp(w, x, y, v, T=1.0, eps=1e-5):
    """Central differences of the analytic gradient along ``v``."""
    plus = _grad({k: w[k] + eps * v[k] for k in w}, x, y, T)
    minus = _grad({k: w[k] - eps * v[k] for k in w}, x, y, T)
    return {k: (plus[k] - minus[k]) / (2 * eps) for k in w}


def _batch(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype("float32"), rng.integers(0, 3, n).astype("int32")


def _weights(model):
    return {k: v.astype(np.float64) for k, v in get_weights(model).items()}


def test_autodiff_gradient_and_hvp_equal_a_numpy_reference():
    model = _tiny()
    w = _weights(model)
    x, y = _batch()
    fn = autodiff.loss_fn(model, x, y)
    assert abs(float(keras.ops.convert_to_numpy(fn(autodiff.current_values(model)))) - _loss(w, x, y)) < 1e-5
    grads = autodiff.gradients(model, fn)
    reference = _grad(w, x.astype(np.float64), y)
    assert set(grads) == set(reference)
    for key in reference:
        np.testing.assert_allclose(grads[key], reference[key], rtol=1e-4, atol=1e-6)
    v = {k: np.random.default_rng(1).normal(size=a.shape) for k, a in w.items()}
    hv = autodiff.hessian_vector_product(model, fn, v)
    reference = _hvp(w, x.astype(np.float64), y, v)
    for key in reference:
        np.testing.assert_allclose(hv[key], reference[key], rtol=1e-3, atol=1e-5)


def test_snip_and_grasp_equal_their_formulas_on_the_reference_derivatives():
    model = _tiny()
    w = _weights(model)
    batches = [_batch(0), _batch(1)]
    masks = {k: np.ones(w[f"{k}/kernel"].shape, bool) for k in ("h", "out")}
    g = {k: np.mean([_grad(w, x.astype(np.float64), y)[k] for x, y in batches], axis=0) for k in w}
    scores = snip(model, batches, masks, None, ScoreOptions())
    for layer in masks:
        np.testing.assert_allclose(scores[layer], np.abs(g[f"{layer}/kernel"] * w[f"{layer}/kernel"]),
                                   rtol=1e-4, atol=1e-7)
    T = 5.0
    gt = {k: np.mean([_grad(w, x.astype(np.float64), y, T)[k] for x, y in batches], axis=0) for k in w}
    hg = {k: np.mean([_hvp(w, x.astype(np.float64), y, gt, T)[k] for x, y in batches], axis=0) for k in w}
    scores = grasp(model, batches, masks, None, ScoreOptions(grasp_temperature=T))
    for layer in masks:  # keep-score -S, S = -w * Hg
        np.testing.assert_allclose(scores[layer], w[f"{layer}/kernel"] * hg[f"{layer}/kernel"], rtol=2e-3, atol=1e-7)


def _small_conv(input_shape=(8, 8, 1), num_classes=10, seed=0):
    keras.utils.set_random_seed(seed)
    x = keras.Input(input_shape)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(8, activation="relu", name="fc1")(h)
    return convert.masked(keras.Model(x, keras.layers.Dense(num_classes, name="output")(h)))


@pytest.mark.parametrize("kind", ["fc", "conv"])
def test_synflow_conserves_the_sum_of_scores_per_layer(kind):
    model = build("fc", (28, 28, 1), 10, seed=0) if kind == "fc" else _small_conv()
    sums = [float(s.sum()) for s in synflow_scores(model).values()]
    assert len(sums) >= 3 and min(sums) > 0
    np.testing.assert_allclose(sums, sums[0], rtol=1e-3)


def test_synflow_rounds_reach_the_target_density_and_restore_the_model():
    model = _small_conv()
    before = get_weights(model)
    options = ScoreOptions(synflow_rounds=4)
    for scope in ("global", "layerwise"):
        masks = masks_at_init(model, method="synflow", density=0.1, scope=scope, options=options)
        sizes = {k: m.size for k, m in masks.items()}
        if scope == "global":
            assert sum(m.sum() for m in masks.values()) == pruning.keep_count(sum(sizes.values()), 0.9, 1)
        else:
            assert all(masks[k].sum() == pruning.keep_count(n, 0.9, 1) for k, n in sizes.items())
    after = get_weights(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # signed weights untouched
    assert all(m.all() for m in (layer.inference_mask() for layer in convert.prunable_layers(model).values()))


@on_jax
def test_synflow_hand_example():
    """One linear layer without bias, input ones: R = sum_j |w_ij|, so the score is |w| itself."""
    x = keras.Input((2,))
    model = convert.masked(keras.Model(x, keras.layers.Dense(2, use_bias=False, name="d")(x)))
    model.get_layer("d").kernel.assign(np.array([[1.0, -2.0], [0.5, 3.0]], "float32"))
    np.testing.assert_allclose(synflow_scores(model)["d"], [[1.0, 2.0], [0.5, 3.0]], rtol=1e-6)


@on_jax
def test_sanity_checks_keep_what_they_should():
    rng = np.random.default_rng(0)
    scores = {"a": rng.random((6, 5)), "b": rng.random((5, 3))}
    ones = {k: np.ones(s.shape, bool) for k, s in scores.items()}
    masks = prune_to(scores, ones, 0.3, "layerwise")
    mixed = shuffle(masks, np.random.default_rng(1))
    assert pruning.density(mixed) == pruning.density(masks)
    assert any(not np.array_equal(mixed[k], masks[k]) for k in masks)
    inverted = prune_to(invert(scores), ones, 0.3, "layerwise")
    for k in scores:  # inversion keeps the lowest scores: what the method prunes, at the same count
        assert inverted[k].sum() == masks[k].sum()
        assert scores[k][inverted[k]].max() < scores[k][masks[k]].min()
    weights = {"a/kernel": np.ones((6, 5)), "a/bias": np.zeros(5), "bn/gamma": np.ones(3)}
    fresh = {"a/kernel": np.full((6, 5), 2.0), "a/bias": np.ones(5), "bn/gamma": np.full(3, 9.0)}
    out, kept = reinit(weights, fresh, {"a": masks["a"]})
    assert kept["a"] is masks["a"] and np.all(out["a/kernel"] == 2) and np.all(out["bn/gamma"] == 1)
    with pytest.raises(ConfigError, match="density"):
        prune_to(scores, ones, 0.0)
    with pytest.raises(ConfigError, match="scope"):
        prune_to(scores, ones, 0.5, "both")


def test_run_writes_rows_summary_and_resumes(small_mnist, tmp_path):
    kwargs = dict(root=tmp_path, data=small_mnist, methods="snip,random", densities="0.1", trials=2, iterations=10,
                  eval_every=5, verbose=0, report=False)
    result = run(**kwargs)
    assert {(r["method"], r["seed"]) for r in result.rows} == {(m, s) for m in ("snip", "random") for s in (0, 1)}
    assert all(abs(r["percent_remaining"] - 10.0) < 0.01 and 0 <= r["test_accuracy_at_early_stop"] <= 1
               for r in result.rows)
    assert [(s["method"], s["trials"]) for s in result.summary] == [("snip", 2), ("random", 2)]
    for name in ("hparams.json", "results.csv", "summary.csv"):
        assert (result.path / name).is_file()
    assert len(list((result.path / "cells").glob("*.json"))) == 4
    stamps = {p.name: p.stat().st_mtime_ns for p in (result.path / "cells").glob("*.json")}
    again = run(**kwargs)  # resume: nothing trained again
    assert again.path == result.path and again.rows == result.rows
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (result.path / "cells").glob("*.json")}


@on_jax
def test_imp_rows_and_their_sanity_checks(small_mnist, tmp_path):
    from supermask import lottery

    lottery.run(root=tmp_path / "lottery", data=small_mnist, levels=1, iterations=20, eval_every=10,
                rewind_iteration=10, control=False, verbose=0, pruning="global", global_rate=0.8)
    experiment = next((tmp_path / "lottery").iterdir())
    result = run(root=tmp_path / "pi", data=small_mnist, methods="magnitude", variants="none,shuffle,reinit",
                 densities="0.2", iterations=20, eval_every=10, imp=str(experiment), verbose=0, report=True)
    imp = {(r["variant"], r["level"]): r for r in result.rows if r["method"] == "imp"}
    assert set(imp) == {("none", 0), ("none", 1), ("shuffle", 1), ("reinit", 1)}
    level1 = store.read_json(experiment / "trial_0" / "level_1" / "metrics.json")
    assert imp[("none", 1)]["test_accuracy_at_early_stop"] == level1["summary"]["test_accuracy_at_early_stop"]
    assert abs(imp[("shuffle", 1)]["percent_remaining"] - 20.0) < 0.01
    assert (result.path / "report" / "report.md").is_file() and (result.path / "report" / "sanity.png").is_file()
    hparams = json.loads((result.path / "hparams.json").read_text())
    assert hparams["imp_fingerprint"] and hparams["imp"] == str(experiment)
    with pytest.raises(ConfigError, match="rewinding"):
        lottery.run(root=tmp_path / "plain", data=small_mnist, levels=0, iterations=20, eval_every=10, verbose=0)
        run(root=tmp_path / "pi", data=small_mnist, iterations=20, imp=str(next((tmp_path / "plain").iterdir())),
            verbose=0)


@on_jax
def test_command_line_and_bad_inputs(small_mnist, tmp_path, capsys, monkeypatch):
    from supermask.__main__ import main as supermask_main
    from supermask.prune_init import __main__ as cli

    monkeypatch.setattr("supermask.runs.load_dataset", lambda *a, **k: small_mnist)
    result = cli.main(["--methods", "magnitude", "--densities", "0.5", "--iterations", "10", "--eval-every", "10",
                       "--root", str(tmp_path), "--no-report"])
    with open(result.path / "summary.csv") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["magnitude"]
    assert "magnitude" in capsys.readouterr().out
    for argv, message in ((["--methods", "snap"], "Unknown pruning-at-init method 'snap'"),
                          (["--densities", "0,1.5"], "densities must be fractions"),
                          (["--variants", "flip"], "variants must be"),
                          (["--imp", str(tmp_path / "nothing")], "not a lottery experiment folder")):
        with pytest.raises(SystemExit):
            supermask_main(["prune_init", *argv, "--iterations", "10", "--root", str(tmp_path)])
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="trials must be an integer > 0"):
        PruneInitConfig(trials=0)
