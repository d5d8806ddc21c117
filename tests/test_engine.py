"""The compiled engine against the reference ``fit`` engine, and K models trained together.

Tolerances: on CPU the compiled programs reproduce the ``fit`` path's weights bit for bit
(same batches, same optimiser, same layers); recorded losses and accuracies are sums taken
in another order, so they agree to 1e-5 (relative). We assert weights to 1e-6 absolute, to
leave room for backends or devices that fuse differently.
"""

import ast
import io
import contextlib
from pathlib import Path

import keras
import numpy as np
import pytest

import supermask.engine
from supermask import recipes
from supermask import lottery, paths, store
from supermask import masks as M
from supermask.settings import LotteryConfig, SupermaskConfig
from supermask.data import Dataset
from supermask.engine import batch_order, train_many
from supermask.engine.driver import BatchStream
from supermask.engine.program import compiled_loss, default_loss, loss_signature, padded_batches
from supermask.errors import ConfigError, TrainingError
from supermask.models import build as build_model
from supermask.train import compile_model, make_optimizer, train_model
from supermask.train_supermask import build, optimizer_for

HISTORY_RTOL, WEIGHT_ATOL = 1e-5, 1e-6


def masked_fc(seed=0, density=0.5, freeze_pruned=False):
    model = build_model("fc", (28, 28, 1), seed=seed, freeze_pruned=freeze_pruned)
    rng = np.random.default_rng(seed)
    M.set_masks(model, {k: rng.random(v.shape) < density for k, v in M.kernels(M.get_weights(model)).items()})
    compile_model(model, make_optimizer(1.2e-3))
    return model


def assert_same_history(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            if key == "seconds" or ra[key] is None:
                assert key == "seconds" or rb[key] is None
                continue
            assert rb[key] == pytest.approx(ra[key], rel=HISTORY_RTOL, abs=1e-7), key


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=WEIGHT_ATOL, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("freeze_pruned", [False, True])
def test_compiled_engine_matches_fit(small_mnist, freeze_pruned):
    runs = {}
    for engine in ("fit", "compiled"):
        keras.backend.clear_session()
        model = masked_fc(freeze_pruned=freeze_pruned)
        result = train_model(model, small_mnist, iterations=250, batch_size=60, eval_every=100,
                             snapshot_iterations=(0, 30), verbose=0, engine=engine)
        runs[engine] = result, M.get_weights(model)
    (fit, fit_w), (ours, ours_w) = runs["fit"], runs["compiled"]
    assert [r["iteration"] for r in ours.history] == [0, 100, 200, 250]
    assert_same_history(fit.history, ours.history)
    assert_same_weights(fit_w, ours_w)
    for it in (0, 30):
        assert_same_weights(fit.snapshots[it], ours.snapshots[it])
    assert ours.history[-1]["test_accuracy"] > 0.6


@pytest.mark.slow
@pytest.mark.parametrize("learner", ["bernoulli", "edge-popup"])
def test_compiled_engine_matches_fit_for_supermasks(small_mnist, learner):
    """The layers' seed-generator state is part of the compiled state: the same mask draws
    every step, so the learned scores equal the fit path's."""
    runs = {}
    for engine in ("fit", "compiled"):
        keras.backend.clear_session()
        config = recipes.resolve(SupermaskConfig(learner=learner, weights="signed_constant", dwr=True,
                                 weight_decay=1e-4), len(small_mnist.x_train))
        model = build(config, (28, 28, 1))
        compile_model(model, optimizer_for(config, 120))
        result = train_model(model, small_mnist, iterations=120, batch_size=config.batch_size, eval_every=60,
                             verbose=0, engine=engine)
        runs[engine] = result, M.get_weights(model)
    assert_same_history(runs["fit"][0].history, runs["compiled"][0].history)
    assert_same_weights(runs["fit"][1], runs["compiled"][1])
    assert not np.array_equal(runs["compiled"][1]["fc1/scores"], build(config, (28, 28, 1)).layers[1].scores)


@pytest.mark.slow
def test_k_models_together_equal_each_alone(small_mnist):
    seeds = [0, 1, 2]
    keras.backend.clear_session()
    together = [masked_fc(seed=s, density=0.3 + 0.2 * s) for s in seeds]
    results = train_many(together, small_mnist, iterations=120, batch_size=60, seeds=seeds, eval_every=60,
                         snapshot_iterations=(40,), start_iteration=20, verbose=0)
    for k, seed in enumerate(seeds):
        keras.backend.clear_session()
        alone = masked_fc(seed=seed, density=0.3 + 0.2 * seed)
        single = train_model(alone, small_mnist, iterations=120, batch_size=60, seed=seed, eval_every=60,
                             snapshot_iterations=(40,), start_iteration=20, verbose=0)
        assert [r["iteration"] for r in results[k].history] == [20, 60, 120]
        assert_same_history(single.history, results[k].history)
        assert_same_weights(M.get_weights(alone), M.get_weights(together[k]))
        assert_same_weights(single.snapshots[40], results[k].snapshots[40])
    assert not np.array_equal(M.get_weights(together[0])["fc1/kernel"], M.get_weights(together[1])["fc1/kernel"])


def test_models_that_cannot_share_a_program_are_refused(small_mnist):
    keras.backend.clear_session()
    models = [masked_fc(), masked_fc(freeze_pruned=True)]
    with pytest.raises(ConfigError, match="differs from model 0"):
        train_many(models, small_mnist, iterations=5, batch_size=60, seeds=[0, 1], verbose=0)
    with pytest.raises(ConfigError, match="one seed per model"):
        train_many(models, small_mnist, iterations=5, batch_size=60, seeds=[0], verbose=0)
    with pytest.raises(ConfigError, match="engine must be one of compiled, fit"):
        train_model(models[0], small_mnist, iterations=5, batch_size=60, verbose=0, engine="turbo")


@pytest.mark.slow
def test_nan_in_one_of_k_models_is_a_clear_error(small_mnist):
    keras.backend.clear_session()
    models = [masked_fc(seed=0), masked_fc(seed=1)]
    # Finite weights whose products overflow: the second model's loss is NaN from step 1.
    M.set_weights(models[1], {"fc1/kernel": np.full((784, 300), 3e38, np.float32)})
    with pytest.raises(TrainingError, match="Lower the learning rate or check the data"):
        train_many(models, small_mnist, iterations=20, batch_size=60, seeds=[0, 1], eval_every=10, verbose=0)


@pytest.mark.slow
def test_progress_is_one_plain_line_per_record_off_a_terminal(small_mnist):
    keras.backend.clear_session()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train_many([masked_fc(), masked_fc(seed=1)], small_mnist, iterations=40, batch_size=60, seeds=[0, 1],
                   eval_every=20, verbose=1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    # "12:00:00 iteration 20/40 | network 0: loss ..., acc ... %, val ... %, test ... % | network 1: ... |
    # 1.2 s elapsed, ~1.0 s left": the time of day, each network apart, the time taken and left.
    parts = lines[0].split(" | ")
    assert parts[0][2] == ":" and parts[0].endswith(" iteration 20/40") and len(parts) == 4
    assert parts[1].startswith("network 0: loss ") and parts[2].startswith("network 1: loss ")
    assert " val " in parts[1] and " test " in parts[2] and " %" in parts[1]
    assert parts[3].endswith(" left") and " elapsed, ~" in parts[3] and lines[1].endswith(" elapsed")


def test_batch_stream_is_batch_order_drawn_lazily():
    stream = BatchStream(10, 4, seed=3)
    parts = np.concatenate([stream.take(1), stream.take(4), stream.take(2)])
    np.testing.assert_array_equal(parts, batch_order(10, 4, 7, seed=3))
    x, y, w = padded_batches(np.ones((2500, 2), np.float32), np.arange(2500), batch_size=1000)
    assert x.shape == (3, 1000, 2) and w.sum() == 2500 and w[2, 500:].sum() == 0


class DoubledCrossEntropy(keras.losses.Loss):
    """Twice the sparse cross-entropy on logits: a loss other than the default."""

    def call(self, y_true, y_pred):
        return 2.0 * keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


def tiny_data(seed=0):
    """240 / 50 / 40 examples of 6 features, 3 classes (the val split is not a multiple of a batch)."""
    rng = np.random.default_rng(seed)
    splits = [(rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32))
              for n in (240, 50, 40)]
    return Dataset("tiny", *(a for split in splits for a in split), classes=3)


def tiny_model(loss="default", optimizer=None):
    """A seeded 6-8-3 MLP emitting logits, compiled with ``loss`` ("default": ``compile_model``'s)."""
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(8, "relu", kernel_initializer=keras.initializers.GlorotUniform(0)),
                              keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(1))])
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2),
                  loss=default_loss() if loss == "default" else loss,
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


@pytest.mark.slow
def test_compiled_engine_trains_with_the_compiled_loss():
    data, runs = tiny_data(), {}
    for name, loss in (("default", "default"), ("doubled", DoubledCrossEntropy())):
        for engine in ("fit", "compiled"):
            keras.backend.clear_session()
            model = tiny_model(loss)
            result = train_many([model], data, iterations=30, batch_size=20, seeds=[0], eval_every=10, verbose=0,
                                engine=engine)[0]
            runs[name, engine] = result.history, [keras.ops.convert_to_numpy(w) for w in model.weights]
    for name in ("default", "doubled"):
        assert_same_history(runs[name, "fit"][0], runs[name, "compiled"][0])
        for a, b in zip(runs[name, "fit"][1], runs[name, "compiled"][1]):
            np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)
    default, doubled = runs["default", "compiled"][0], runs["doubled", "compiled"][0]
    for key in ("val_loss", "test_loss"):  # the same weights at the start: exactly twice the loss
        assert doubled[0][key] == pytest.approx(2 * default[0][key], rel=1e-6)
    # Adam's step barely depends on the scale of the loss: the runs stay close, their losses twice apart.
    assert doubled[-1]["train_loss"] == pytest.approx(2 * default[-1]["train_loss"], rel=1e-2)


def test_the_loss_a_program_gets():
    keras.backend.clear_session()
    assert loss_signature(compiled_loss(tiny_model(loss=None))) == loss_signature(default_loss())
    assert default_loss().get_config()["from_logits"]
    named = compiled_loss(tiny_model(loss="sparse_categorical_crossentropy"))
    y, logits = np.array([0, 2]), np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(named(y, logits)), -np.log([0.2, 0.8]).mean(), rtol=1e-6)
    with pytest.raises(ConfigError, match="averages over the batch"):
        compiled_loss(tiny_model(loss=keras.losses.SparseCategoricalCrossentropy(reduction="sum")))
    with pytest.raises(ConfigError, match="differs from model 0"):
        train_many([tiny_model(), tiny_model(DoubledCrossEntropy())], tiny_data(), iterations=5, batch_size=20,
                   seeds=[0, 1], verbose=0)
    with pytest.raises(ConfigError, match="loss it was compiled with"):
        train_many([tiny_model(loss=None)], tiny_data(), iterations=5, batch_size=20, seeds=[0], verbose=0,
                   engine="fit")


def test_engine_modules_import_no_circle():
    """Backends import ``program``, never the driver; the only function-level imports of
    ``supermask`` modules are the driver's of the optional backends, in ``program_for``."""
    root = Path(supermask.engine.__file__).parent
    names = {path.stem for path in root.glob("*.py")}
    edges, lazy = {}, set()
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import) and "supermask" in n.names[0].name]
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and "supermask" in (n.module or "")]
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            lazy |= {(path.stem, function.name, a.name) for n in ast.walk(function) if n in imports for a in n.names}
        for node in imports:
            if node.module == "supermask.engine":
                targets = {a.name if a.name in names else "__init__" for a in node.names}
            else:
                targets = {node.module.split(".")[2]} if node.module.startswith("supermask.engine.") else set()
            edges.setdefault(path.stem, set()).update(targets)
    assert sorted(lazy) == [("driver", "program_for", b) for b in ("jax", "tensorflow", "torch")]
    assert not any("driver" in edges.get(b, ()) for b in ("jax", "tensorflow", "torch", "fit", "program"))

    def reaches(start, goal, seen=()):
        return any(t == goal or (t not in seen and reaches(t, goal, (*seen, t))) for t in edges.get(start, ()))

    assert not [name for name in names if reaches(name, name)]


@pytest.mark.slow
def test_lottery_trials_together_equal_single_trial_runs(tmp_path, small_mnist):
    config = recipes.resolve(LotteryConfig(iterations=60, eval_every=30, levels=2), len(small_mnist.x_train))
    lottery.run_trials({s: (config.__class__(**{**config.__dict__, "seed": s}), tmp_path / "both" / f"trial_{s}")
                        for s in (0, 1)}, small_mnist, verbose=0)
    for seed in (0, 1):
        single = LotteryConfig(**{**config.__dict__, "seed": seed})
        lottery.run_trial(single, small_mnist, tmp_path / "alone" / f"trial_{seed}", verbose=0)
        for level in (0, 1, 2):
            for sub in ((), ("control",)) if level else ((),):
                a = paths.level(tmp_path / "both" / f"trial_{seed}", level).joinpath(*sub)
                b = paths.level(tmp_path / "alone" / f"trial_{seed}", level).joinpath(*sub)
                for fn in (paths.masks, paths.weights_init):
                    for key, value in store.load_arrays(fn(b)).items():
                        np.testing.assert_array_equal(store.load_arrays(fn(a))[key], value)
                assert_same_weights(store.load_arrays(paths.weights_final(a)),
                                    store.load_arrays(paths.weights_final(b)))
                assert_same_history(store.read_json(paths.metrics(b))["history"],
                                    store.read_json(paths.metrics(a))["history"])


@pytest.mark.slow
def test_supermask_seeds_together_equal_each_seed_alone(tmp_path, mnist):
    from tests.conftest import shared_data_dir

    flags = ["--iterations", "20", "--eval-every", "10", "--eval-samples", "2", "--validation-size", "1000",
             "--data-dir", str(shared_data_dir() / "mnist"), "--quiet"]
    from supermask.train_supermask.__main__ import main as supermask_main

    both = supermask_main([*flags, "--seeds", "2", "--out", str(tmp_path / "both")])
    alone = supermask_main([*flags, "--seed", "1", "--out", str(tmp_path / "alone")])
    assert [m["config_hash"] for m in both][1] == alone["config_hash"]
    assert sorted(p.name for p in (tmp_path / "both").iterdir() if p.is_dir()) == ["seed_0", "seed_1"]
    assert store.read_json(paths.hparams(tmp_path / "both" / "seed_1"))["seed"] == 1
    assert_same_history(alone["history"], both[1]["history"])
    assert_same_weights(store.load_arrays(paths.weights_final(tmp_path / "alone")),
                        store.load_arrays(paths.weights_final(tmp_path / "both" / "seed_1")))
    assert not np.array_equal(store.load_arrays(paths.weights_final(tmp_path / "both" / "seed_0"))["fc1/scores"],
                              store.load_arrays(paths.weights_final(tmp_path / "both" / "seed_1"))["fc1/scores"])


torch_only = pytest.mark.skipif(keras.backend.backend() != "torch", reason="the PyTorch program")


@torch_only
def test_torch_adam_update_is_kerass_adam_bit_for_bit():
    """Fails when Keras changes its torch Adam: then compare anew and update ``ADAM_CHECKED_KERAS``."""
    import torch

    from supermask.engine.torch import adam_checked, adam_update

    assert adam_checked(keras.__version__), (f"adam_update was not compared with Keras {keras.__version__}'s Adam: "
                                             "check this test passes with it, then add it to ADAM_CHECKED_KERAS.")
    models = []
    for _ in range(2):
        keras.backend.clear_session()
        models.append(masked_fc(seed=3))
        models[-1].optimizer.build(models[-1].trainable_variables)
    update = adam_update(models[1].optimizer, models[1].trainable_variables)
    rng = np.random.default_rng(0)
    for _ in range(5):
        grads = [torch.as_tensor(rng.normal(size=v.shape).astype(np.float32), device=v.value.device)
                 for v in models[0].trainable_variables]
        models[0].optimizer.apply(grads, models[0].trainable_variables)
        update(grads)
    for a, b in zip(models[0].trainable_variables + models[0].optimizer.variables,
                    models[1].trainable_variables + models[1].optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
    assert int(keras.ops.convert_to_numpy(models[1].optimizer.iterations)) == 5
    # Anything beyond a plain Adam goes through the optimiser's own apply.
    for optimizer in (keras.optimizers.Adam(1e-3, clipnorm=1.0), keras.optimizers.Adam(1e-3, amsgrad=True),
                      keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, 100))):
        optimizer.build(models[0].trainable_variables)
        assert adam_update(optimizer, models[0].trainable_variables) is None


@torch_only
def test_torch_adam_runs_through_apply_on_an_unchecked_keras(monkeypatch):
    """On a Keras release ``adam_update`` was not compared with, Adam steps go through
    ``optimizer.apply``: the same training, bit for bit, without Keras's internals."""
    from supermask.engine.torch import adam_checked, adam_update

    data, weights = tiny_data(), {}
    for version in (keras.__version__, "3.99.0"):
        monkeypatch.setattr(keras, "__version__", version)
        keras.backend.clear_session()
        model = tiny_model()
        model.optimizer.build(model.trainable_variables)
        assert (adam_update(model.optimizer, model.trainable_variables) is None) == (version == "3.99.0")
        train_many([model], data, iterations=30, batch_size=20, seeds=[0], eval_every=10, verbose=0)
        weights[version] = [keras.ops.convert_to_numpy(w) for w in model.weights]
    assert not adam_checked("3.99.0") and not adam_checked("4.15.0") and adam_checked("3.15.0rc1")
    for a, b in zip(*weights.values()):
        np.testing.assert_array_equal(a, b)


def _cuda():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@torch_only
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device")
@pytest.mark.parametrize("freeze_pruned", [False, True])
def test_torch_cuda_graph_steps_equal_eager_steps(small_mnist, monkeypatch, freeze_pruned):
    from supermask.engine import torch as torch_engine

    runs = {}
    for graphs in ("1", "0"):
        monkeypatch.setenv("SUPERMASK_CUDA_GRAPHS", graphs)
        keras.backend.clear_session()
        model = masked_fc(freeze_pruned=freeze_pruned)
        program = torch_engine.Program([model], small_mnist, 60, loss=default_loss())
        sums = [program.train_chunk(batch_order(3000, 60, 250, seed=0)[None, a:b]) for a, b in ((0, 100), (100, 250))]
        assert (program.singles[0].graph is not None) == (graphs == "1")
        runs[graphs] = np.stack(sums), program.evaluate()["test"], M.get_weights(model)
    np.testing.assert_allclose(runs["1"][0], runs["0"][0], rtol=1e-5)
    np.testing.assert_allclose(runs["1"][1], runs["0"][1], rtol=1e-5)
    assert_same_weights(runs["0"][2], runs["1"][2])
