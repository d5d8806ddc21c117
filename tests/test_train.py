"""Training seam and `python -m supermask.train` (run once per KERAS_BACKEND)."""

import json

import keras
import numpy as np
import pytest

from supermask import masks as M
from supermask import paths, store
from supermask.data import Dataset
from supermask.errors import TrainingError
from supermask.models import build as build_model
from supermask.train import batch_order, compile_model, make_optimizer, train_model
from supermask.train.__main__ import build_parser, main


def test_batch_order_is_seeded_full_batches_over_shuffled_epochs():
    order = batch_order(10, 4, 6, seed=1)
    assert order.shape == (6, 4)
    flat = order.reshape(-1)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    np.testing.assert_array_equal(order, batch_order(10, 4, 6, seed=1))
    assert not np.array_equal(order, batch_order(10, 4, 6, seed=2))


def _masked_fc(seed=0, density=0.5, freeze_pruned=False):
    model = build_model("fc", (28, 28, 1), seed=seed, freeze_pruned=freeze_pruned)
    rng = np.random.default_rng(seed)
    masks = {k: rng.random(v.shape) < density for k, v in M.kernels(M.get_weights(model)).items()}
    M.set_masks(model, masks)
    compile_model(model, make_optimizer(1.2e-3))
    return model, masks


@pytest.mark.parametrize("freeze_pruned", [False, True])
def test_masked_off_weights_are_bit_identical_after_training(small_mnist, freeze_pruned):
    model, masks = _masked_fc(freeze_pruned=freeze_pruned)
    before = M.kernels(M.get_weights(model))
    result = train_model(model, small_mnist, iterations=60, batch_size=60, eval_every=30, verbose=0)
    after = M.kernels(M.get_weights(model))
    for name, mask in masks.items():
        np.testing.assert_array_equal(after[name][~mask], before[name][~mask])  # bit-identical
        assert np.mean(after[name][mask] != before[name][mask]) > 0.5  # the kept ones trained
        np.testing.assert_array_equal(M.get_masks(model)[name], mask)
    assert [r["iteration"] for r in result.history] == [0, 30, 60]
    assert result.history[-1]["test_accuracy"] > 0.6  # 10 classes: chance is 0.1


@pytest.mark.slow
def test_snapshots_and_history(small_mnist):
    model, _ = _masked_fc(density=1.0)
    result = train_model(model, small_mnist, iterations=40, batch_size=50, eval_every=25,
                         snapshot_iterations=(0, 7), verbose=0)
    assert [r["iteration"] for r in result.history] == [0, 25, 40]
    assert result.history[0]["train_loss"] is None and result.history[1]["train_loss"] > 0
    assert sorted(result.snapshots) == [0, 7]
    changed = result.snapshots[7]["fc1/kernel"] != result.snapshots[0]["fc1/kernel"]
    assert changed.any()
    assert not np.array_equal(result.snapshots[7]["fc1/kernel"], M.get_weights(model)["fc1/kernel"])


def test_nan_loss_is_a_clear_error(small_mnist):
    model, _ = _masked_fc()
    x = small_mnist.x_train.copy()
    x[:] = np.nan
    bad = Dataset("mnist", x, small_mnist.y_train, x[:0], small_mnist.y_val[:0], x[:10], small_mnist.y_test[:10])
    with pytest.raises(TrainingError, match="Lower the learning rate or check the data"):
        train_model(model, bad, iterations=10, batch_size=10, eval_every=5, verbose=0)


def test_help_documents_every_flag():
    text = build_parser().format_help()
    for flag in ["--model", "--dataset", "--epochs", "--iterations", "--batch-size", "--learning-rate",
                 "--seed", "--eval-every", "--validation-size", "--data-dir", "--out", "--overwrite", "--engine",
                 "--quiet"]:
        assert flag in text


@pytest.mark.slow
def test_cli_writes_weights_masks_and_metrics(tmp_path, mnist):
    from tests.conftest import shared_data_dir

    out = tmp_path / "run"
    main(["--iterations", "30", "--eval-every", "15", "--data-dir", str(shared_data_dir() / "mnist"),
          "--out", str(out), "--quiet"])
    hparams = json.loads(paths.hparams(out).read_text())
    assert hparams["model"] == "fc" and hparams["iterations"] == 30
    metrics = store.read_json(paths.metrics(out))
    assert metrics["backend"] == keras.backend.backend()
    assert [r["iteration"] for r in metrics["history"]] == [0, 15, 30]
    assert metrics["history"][-1]["test_accuracy"] > 0.5
    init, final = store.load_arrays(paths.weights_init(out)), store.load_arrays(paths.weights_final(out))
    assert set(init) == set(final) == {f"{l}/{v}" for l in ("fc1", "fc2", "output") for v in ("kernel", "bias")}
    assert not np.array_equal(init["fc1/kernel"], final["fc1/kernel"])
    assert all(m.all() for m in store.load_arrays(paths.masks(out)).values())
    restored = keras.saving.load_model(paths.model(out))
    np.testing.assert_array_equal(M.get_weights(restored)["fc2/kernel"], final["fc2/kernel"])
    assert not list(out.glob(".*.tmp*"))  # no temporary files left


def test_cli_bad_input_exits_with_a_message(tmp_path, capsys):
    from supermask.cli import run_main

    with pytest.raises(SystemExit) as exc:
        run_main(main, ["--model", "resnet", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Unknown model 'resnet'. Valid models: fc, conv2, conv4, conv6, resnet20, vgg16, or your own builder" in err
    assert err.count("\n") == 1
    with pytest.raises(SystemExit):
        run_main(main, ["--data-dir", str(tmp_path), "--out", str(tmp_path / "y"), "--quiet"])
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()  # nothing half-written
