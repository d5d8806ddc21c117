"""Supermask training through the one seam and `python -m supermask.train_supermask`
(run once per KERAS_BACKEND)."""

import json

import keras
import numpy as np
import pytest

from supermask import backend, paths, store
from supermask import masks as M
from supermask.data import Dataset
from supermask.layers import SupermaskDense
from supermask.models import build as build_model
from supermask.train import compile_model, make_optimizer, train_model
from supermask.train_supermask.__main__ import build_parser, main


def test_edge_popup_trains_only_the_scores_at_density_k(small_mnist):
    # (The Bernoulli learner is checked the same way, end to end, by the CLI test below.)
    model = build_model("fc", (28, 28, 1), seed=0, kind="supermask", supermask={"learner": "edge-popup", "k": 0.5})
    compile_model(model, make_optimizer(0.1, name="sgd", momentum=0.9, cosine_steps=40))  # Ramanujan et al.
    assert [v.path.split("/")[-1] for v in model.trainable_variables] == ["scores"] * 3
    before = M.get_weights(model)
    result = train_model(model, small_mnist, iterations=40, batch_size=128, eval_every=20, verbose=0)
    after = M.get_weights(model)
    for key, value in before.items():
        if key.endswith("/scores"):
            assert np.mean(after[key] != value) > 0.5  # the scores learned
        else:
            np.testing.assert_array_equal(after[key], value)  # kernels and biases: bit-identical
    assert [r["iteration"] for r in result.history] == [0, 20, 40]
    assert result.history[-1]["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    for mask in M.get_masks(model).values():
        assert mask.dtype == bool and mask.sum() == mask.size - int(0.5 * mask.size)


def _one_batch_dataset(n=64, features=12):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype("float32")
    y = rng.integers(0, 10, size=n).astype("int32")
    return Dataset("toy", x, y, x[:0], y[:0], x[:16], y[:16])


def _toy_model(seed=5):
    inputs = keras.Input((12,))
    outputs = SupermaskDense(10, seed=seed, name="output")(inputs)
    model = keras.Model(inputs, outputs)
    compile_model(model, make_optimizer(0.0, name="sgd"))  # lr 0: only the mask sample varies
    return model


def test_a_fresh_mask_is_sampled_at_every_compiled_training_step():
    # Every step sees the same 64 examples and the scores never move (lr 0), so the
    # per-step training loss changes only if the mask is redrawn at each step.
    data = _one_batch_dataset()
    result = train_model(_toy_model(), data, iterations=5, batch_size=64, eval_every=1, verbose=0)
    losses = [r["train_loss"] for r in result.history[1:]]
    assert len(set(np.round(losses, 6))) == 5, losses

    # Inside one compiled multi-step call too (steps_per_execution > 1 on JAX / TensorFlow).
    model = _toy_model()
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(logs["loss"]))

    x = np.tile(data.x_train, (8, 1))
    y = np.tile(data.y_train, 8)
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0, callbacks=[Record()])
    assert len(set(np.round(seen, 6))) == len(seen) >= 8 // backend.steps_per_execution()
    model.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0, callbacks=[Record()])
    assert len(set(np.round(seen, 6))) == len(seen)


def test_help_documents_every_flag():
    text = build_parser().format_help()
    for flag in ["--model", "--dataset", "--epochs", "--iterations", "--batch-size", "--learning-rate", "--seed",
                 "--eval-every", "--validation-size", "--learner", "--k", "--weights", "--dwr", "--no-dwr",
                 "--inference", "--optimizer", "--momentum", "--weight-decay", "--lr-schedule", "--score-init",
                 "--eval-samples", "--seeds", "--data-dir", "--out", "--overwrite", "--engine", "--quiet"]:
        assert flag in text


@pytest.mark.slow
def test_cli_writes_weights_scores_masks_metrics_and_model(tmp_path, mnist):
    from tests.conftest import shared_data_dir

    out = tmp_path / "run"
    main(["--iterations", "20", "--eval-every", "10", "--eval-samples", "3", "--weights", "signed_constant",
          "--dwr", "--validation-size", "1000", "--data-dir", str(shared_data_dir() / "mnist"),
          "--out", str(out), "--quiet"])
    hparams = json.loads(paths.hparams(out).read_text())
    assert hparams["learner"] == "bernoulli" and hparams["dwr"] is True and hparams["iterations"] == 20
    metrics = store.read_json(paths.metrics(out))
    assert metrics["backend"] == keras.backend.backend()
    assert [r["iteration"] for r in metrics["history"]] == [0, 10, 20]
    final = metrics["final"]
    assert final["deterministic"]["test_accuracy"] > 0.5
    assert set(final["deterministic"]) >= {"train_accuracy", "val_accuracy", "test_accuracy"}
    assert len(final["sampled"]["test_accuracies"]) == 3 and final["sampled"]["test_accuracy_mean"] > 0.5
    density = metrics["density"]
    assert set(density) == {"fc1", "fc2", "output", "total"}
    assert all(0 < d["inference"] < 1 and 0 < d["expected"] < 1 for d in density.values())
    init, final_w = store.load_arrays(paths.weights_init(out)), store.load_arrays(paths.weights_final(out))
    assert set(init) == set(final_w) == {f"{l}/{v}" for l in ("fc1", "fc2", "output")
                                         for v in ("kernel", "bias", "scores")}
    for key in init:
        if key.endswith("/scores"):
            assert not np.array_equal(init[key], final_w[key])
        else:
            np.testing.assert_array_equal(init[key], final_w[key])
    assert len(np.unique(np.abs(init["fc1/kernel"]))) == 1  # signed constant
    saved_masks = store.load_arrays(paths.masks(out))
    np.testing.assert_array_equal(saved_masks["fc2"], final_w["fc2/scores"] > 0)
    assert saved_masks["fc2"].mean() == pytest.approx(density["fc2"]["inference"])
    restored = keras.saving.load_model(paths.model(out))
    np.testing.assert_array_equal(M.get_masks(restored)["fc1"], saved_masks["fc1"])
    layer = restored.get_layer("fc1")
    kept = saved_masks["fc1"]
    np.testing.assert_allclose(layer.inference_kernel(),
                               init["fc1/kernel"] * kept * (kept.size / kept.sum()), rtol=1e-6)
    assert not list(out.glob(".*.tmp*"))


@pytest.mark.parametrize("argv, message", [
    (["--learner", "edge-popup", "--k", "1.5"], "k must be in (0, 1]. Received: k=1.5"),
    (["--learner", "hebbian"], "invalid choice: 'hebbian' (choose from 'bernoulli', 'edge-popup')"),
    (["--weights", "ones"], "invalid choice: 'ones' (choose from 'init', 'signed_constant')"),
])
def test_cli_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, message):
    from supermask.cli import run_main

    with pytest.raises(SystemExit) as exc:
        run_main(main, argv + ["--out", str(tmp_path / "x"), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
