"""Bring your own model: conversion to masked / supermask layers and back, nested walks, IMP with
global pruning on a Functional model, the builder CLI, and the README example (every backend)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from supermask import convert, lottery, paths, store, train, train_supermask
from supermask.lottery import __main__ as lottery_cli
from supermask import masks as M
from supermask.data import from_arrays
from supermask.errors import ConfigError
from supermask.layers import MaskedConv2D, MaskedDense, MaskedLayer, SupermaskLayer
from supermask.pruning import keep_count

REPO = Path(__file__).resolve().parents[1]


def residual_model(input_shape=(8, 8, 1), num_classes=3, seed=0):
    """Functional: a stem conv, a nested Sequential block (conv + BatchNormalization + ReLU) added
    back to its input, pooling and a dense head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    block = keras.Sequential([keras.layers.Conv2D(4, 3, padding="same", name="conv"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(name="relu")],
                             name="block")
    x = keras.layers.Add(name="add")([x, block(x)])
    x = keras.layers.Conv2D(6, 3, strides=2, padding="valid", name="down")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="head")(x), name="residual")


class Block(keras.layers.Layer):
    """A custom layer holding layers in an attribute and a list, and a weight of its own."""

    def __init__(self, units=6, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.first = keras.layers.Dense(units, activation="relu", name="first")
        self.rest = [keras.layers.Dense(units, name="second"), keras.layers.BatchNormalization(name="norm")]

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    def call(self, x, training=False):
        return self.rest[1](self.rest[0](self.first(x)), training=training) * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Subclassed(keras.Model):
    def __init__(self, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.block = Block(name="block")
        self.out = keras.layers.Dense(classes, name="out")

    def call(self, x, training=False):
        return self.out(self.block(x, training=training))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


def _randomize(model, seed=1):
    """Non-trivial values in every weight (BatchNormalization statistics included)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        value = rng.uniform(0.5, 1.5, shape) if "variance" in variable.path else rng.normal(0, 0.5, shape)
        variable.assign(value.astype("float32"))


def _predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def _subclassed():
    model = Subclassed(name="sub")
    model(np.zeros((2, 5), "float32"))
    return model


@pytest.mark.slow
@pytest.mark.parametrize("make, shape", [(residual_model, (4, 8, 8, 1)), (_subclassed, (4, 5))])
def test_masked_copy_computes_exactly_what_the_original_computes(make, shape):
    model = make()
    _randomize(model)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    copy = convert.masked(model)
    np.testing.assert_array_equal(_predict(copy, x), _predict(model, x))
    layers = convert.prunable_layers(copy)
    assert all(isinstance(layer, MaskedLayer) for layer in layers.values())
    if make is residual_model:
        assert list(layers) == ["stem", "block/conv", "down", "hidden", "head"]
        assert isinstance(layers["block/conv"], MaskedConv2D) and layers["down"].strides == (2, 2)
        # Everything else is copied unchanged, and the original is left alone.
        assert type(convert.named_layers(copy)["block/bn"]) is keras.layers.BatchNormalization
        assert not convert.prunable_layers(model)
    else:
        assert list(layers) == ["block/first", "block/second", "out"]
        assert list(convert.named_layers(copy)) == ["block", "block/first", "block/second", "block/norm", "out"]
        assert "block/scale" in M.get_weights(copy)
    weights = M.get_weights(copy)
    original = {f"{key}/{v.name}": np.asarray(keras.ops.convert_to_numpy(v))
                for key, layer in convert.walk(model) for v in convert.own_weights(layer)}
    assert set(weights) == set(original)
    for key in weights:
        np.testing.assert_array_equal(weights[key], original[key])


def test_masks_take_effect_and_strip_folds_them_into_plain_layers(tmp_path):
    model = convert.masked(residual_model())
    _randomize(model, seed=2)
    rng = np.random.default_rng(3)
    masks = {name: rng.random(m.shape) < 0.4 for name, m in M.get_masks(model).items()}
    M.set_masks(model, masks)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    expected = _predict(model, x)
    plain = convert.strip(model)
    assert not any(isinstance(layer, (MaskedLayer, SupermaskLayer)) for _, layer in convert.walk(plain))
    assert type(convert.named_layers(plain)["block/conv"]) is keras.layers.Conv2D
    np.testing.assert_array_equal(_predict(plain, x), expected)
    for name, mask in masks.items():
        kernel = keras.ops.convert_to_numpy(convert.named_layers(plain)[name].kernel)
        assert not kernel[~mask].any()
    # The masked model and the stripped one both round-trip through .keras.
    for m, name in ((model, "masked.keras"), (plain, "plain.keras")):
        m.save(tmp_path / name)
        np.testing.assert_array_equal(_predict(keras.saving.load_model(tmp_path / name), x), expected)
    # A masked model converted again keeps its masks.
    np.testing.assert_array_equal(M.get_masks(convert.masked(model))["head"], masks["head"])


def test_supermask_copy_freezes_the_weights_and_learns_scores():
    model = residual_model()
    _randomize(model, seed=4)
    sm = convert.supermask(model, learner="edge-popup", k=1.0, seed=7)
    layers = convert.prunable_layers(sm)
    assert list(layers) == ["stem", "block/conv", "down", "hidden", "head"]
    assert all(isinstance(layer, SupermaskLayer) and not layer.kernel.trainable for layer in layers.values())
    assert {v.name for v in sm.trainable_weights} >= {"scores", "gamma", "beta"}
    x = np.random.default_rng(5).normal(size=(3, 8, 8, 1)).astype("float32")
    # k = 1 keeps every weight: the supermask model computes the original function.
    np.testing.assert_allclose(_predict(sm, x), _predict(model, x), rtol=1e-5, atol=1e-5)
    signed = convert.prunable_layers(convert.supermask(model, signed_constant=True))["hidden"]
    kernel = keras.ops.convert_to_numpy(convert.named_layers(model)["hidden"].kernel)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(signed.kernel), np.sign(kernel) * kernel.std(), rtol=1e-6)


def test_conv1d_and_channels_first_convert_exactly():
    inputs = keras.Input((12, 3))
    x = keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2, name="causal")(inputs)
    x = keras.layers.Conv1D(4, 3, strides=2, groups=2, name="grouped")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    _randomize(model, seed=6)
    x = np.random.default_rng(6).normal(size=(2, 12, 3)).astype("float32")
    copy = convert.masked(model)
    assert [type(layer).__name__ for layer in convert.prunable_layers(copy).values()] == \
        ["MaskedConv1D", "MaskedConv1D", "MaskedDense"]
    np.testing.assert_allclose(_predict(copy, x), _predict(model, x), rtol=1e-6, atol=1e-6)


def test_walks_and_conversions_refuse_bad_models_with_one_clear_line():
    no_kernel = keras.Sequential([keras.Input((4,)), keras.layers.ReLU()])
    with pytest.raises(ConfigError, match="no layer supermask can prune"):
        convert.masked(no_kernel)
    with pytest.raises(ConfigError, match="not built"):
        convert.masked(keras.Sequential([keras.layers.Dense(2)]))

    class Twins(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.a, self.b = keras.layers.Dense(2, name="same"), keras.layers.Dense(2, name="same")

        def call(self, x):
            return self.b(self.a(x))

    twins = Twins()
    twins(np.zeros((1, 2), "float32"))
    with pytest.raises(ConfigError, match="both called 'same'"):
        convert.prunable_layers(twins)
    with pytest.raises(ConfigError, match="softmax"):
        from supermask.models import build, model_label

        def softmax_model(input_shape, num_classes):
            return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                                     keras.layers.Dense(num_classes, activation="softmax")])

        build(model_label(softmax_model), (4, 4, 1), 10)
    with pytest.raises(ConfigError, match="lambda"):
        lottery.run(model=lambda input_shape, num_classes: None, levels=1)


def _tiny_data(mnist, n=600):
    """8 x 8 centre crops of real MNIST, labels folded into 3 classes: ((x, y), (x_val, y_val), (x_test, y_test))."""
    def crop(x, y, count):
        return x[:count, 10:18, 10:18], y[:count] % 3

    return crop(mnist.x_train, mnist.y_train, n), crop(mnist.x_val, mnist.y_val, 200), crop(mnist.x_test, mnist.y_test, 200)


@pytest.mark.slow
def test_global_imp_on_a_functional_model_with_batchnorm(tmp_path, mnist):
    """Two levels of global IMP: exact closed-form counts over all layers but the ignored head,
    every weight (BatchNormalization's too) reset to init, the control trained beside it."""
    rows = lottery.run(model=residual_model, data=_tiny_data(mnist), levels=2, iterations=30, eval_every=15,
                       pruning="global", global_rate=0.3, prune_ignore=["head"], root=tmp_path, verbose=0)
    experiment = next(p for p in tmp_path.iterdir() if p.is_dir())
    trial = paths.trial(experiment, 0)
    hparams = store.read_json(paths.hparams(experiment))
    assert hparams["model"].endswith(":residual_model") and hparams["dataset"].startswith("arrays:")
    assert (hparams["pruning"], hparams["global_rate"], hparams["prune_ignore"]) == ("global", 0.3, ["head"])
    init0 = store.load_arrays(paths.weights_init(paths.level(trial, 0)))
    final0 = store.load_arrays(paths.weights_final(paths.level(trial, 0)))
    assert {"block/bn/moving_mean", "block/bn/gamma", "block/conv/kernel", "head/bias"} <= set(init0)
    assert not np.array_equal(final0["block/bn/moving_mean"], init0["block/bn/moving_mean"])  # it trained
    sizes = {name: m.size for name, m in store.load_arrays(paths.masks(paths.level(trial, 0))).items()}
    pruned = sum(n for name, n in sizes.items() if name != "head")
    previous = None
    for level in (1, 2):
        folder = paths.level(trial, level)
        masks = store.load_arrays(paths.masks(folder))
        assert masks["head"].all()
        assert sum(int(m.sum()) for name, m in masks.items() if name != "head") == keep_count(pruned, 0.3, level)
        if previous is not None:
            assert all(not (masks[k] & ~previous[k]).any() for k in masks)  # never revived
        previous = masks
        start = store.load_arrays(paths.weights_init(folder))
        for key in ("block/bn/gamma", "block/bn/moving_mean", "block/bn/moving_variance", "stem/bias"):
            np.testing.assert_array_equal(start[key], init0[key])
        kept = masks["block/conv"]
        np.testing.assert_array_equal(start["block/conv/kernel"][kept], init0["block/conv/kernel"][kept])
        assert paths.metrics(paths.control(folder)).is_file()
        # The scores of level L were the magnitudes at the end of level L-1: every kept weight of the
        # pruned layers is at least as large as every weight pruned at this level.
        prior = store.load_arrays(paths.masks(paths.level(trial, level - 1)))
        final = store.load_arrays(paths.weights_final(paths.level(trial, level - 1)))
        kept_scores = np.concatenate([np.abs(final[f"{k}/kernel"][masks[k]]) for k in masks if k != "head"])
        dropped = np.concatenate([np.abs(final[f"{k}/kernel"][prior[k] & ~masks[k]]) for k in masks if k != "head"])
        assert kept_scores.min() >= dropped.max()
    assert [r["level"] for r in rows[0]] == [0, 1, 2]


@pytest.mark.slow
def test_layerwise_rates_by_kind_overrides_and_own_arrays(tmp_path, mnist):
    data = _tiny_data(mnist)
    lottery.run(model=residual_model, data=data, levels=1, iterations=10, eval_every=10, control=False,
                layer_rates={"block/conv": 0.5}, prune_ignore="stem", root=tmp_path, verbose=0)
    experiment = next(p for p in tmp_path.iterdir() if p.is_dir())
    masks = store.load_arrays(paths.masks(paths.level(paths.trial(experiment, 0), 1)))
    sizes = {"stem": 36, "block/conv": 144, "down": 216, "hidden": 48, "head": 24}
    rates = {"stem": 0.0, "block/conv": 0.5, "down": 0.1, "hidden": 0.2, "head": 0.1}  # conv / dense / output
    assert {k: int(m.sum()) for k, m in masks.items()} == {k: keep_count(n, rates[k], 1) for k, n in sizes.items()}
    # Bad inputs: one clear error, before any work.
    with pytest.raises(ConfigError, match="No prunable layer 'nope'"):
        lottery.run(model=residual_model, data=data, levels=1, iterations=10, prune_ignore="nope",
                    root=tmp_path / "x", verbose=0)
    with pytest.raises(ConfigError, match="cannot prune globally"):
        lottery.run(model=residual_model, data=data, pruning="global", criterion="large_final_same_sign")
    with pytest.raises(ConfigError, match="one --global-rate"):
        lottery.run(model=residual_model, data=data, pruning="global", rate_fc=0.3)
    with pytest.raises(ConfigError, match="labels must be"):
        lottery.run(model=residual_model, data=((data[0][0], data[0][1][:10]), data[2]))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_train_and_supermask_trainer_take_a_builder_and_arrays(tmp_path, mnist):
    data = _tiny_data(mnist)
    metrics = train.run(model=residual_model, data=data, iterations=20, eval_every=10, out=tmp_path / "dense",
                        verbose=0)
    assert metrics["summary"]["final_test_accuracy"] is not None
    assert "block/bn/moving_variance" in store.load_arrays(paths.weights_final(tmp_path / "dense"))
    metrics = train_supermask.run(model=residual_model, data=data, learner="edge-popup", k=0.5, iterations=20,
                                  eval_every=10, out=tmp_path / "sm", verbose=0)
    assert set(metrics["density"]) == {"stem", "block/conv", "down", "hidden", "head", "total"}
    model = keras.saving.load_model(paths.model(tmp_path / "sm"))
    assert all(isinstance(layer, SupermaskLayer) for layer in convert.prunable_layers(model).values())


@pytest.mark.slow
def test_cli_takes_a_builder_as_package_module_function(tmp_path, mnist, monkeypatch, capsys):
    (tmp_path / "my_models.py").write_text(
        "import keras\n\n"
        "def tiny(input_shape, num_classes, seed=0):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),\n"
        "                             keras.Sequential([keras.layers.Dense(16, activation='relu')], name='body'),\n"
        "                             keras.layers.Dense(num_classes, name='out')])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from supermask.cli import run_main

    root = tmp_path / "runs"
    run_main(lottery_cli.main, ["--model", "my_models:tiny", "--levels", "1", "--iterations", "20", "--eval-every", "10",
                            "--validation-size", "1000", "--pruning", "global", "--prune-ignore", "out",
                            "--root", str(root), "--data-dir", str(mnist_root()), "--quiet"])
    experiment = next(p for p in root.iterdir() if p.is_dir())
    masks = store.load_arrays(paths.masks(paths.level(paths.trial(experiment, 0), 1)))
    assert set(masks) == {"body/dense", "out"} and masks["out"].all()
    assert int(masks["body/dense"].sum()) == keep_count(784 * 16, 0.2, 1)
    for argv, message in ((["--model", "no_such_module:f"], "Cannot import module 'no_such_module'"),
                          (["--model", "my_models:missing"], "has no 'missing'"),
                          (["--model", "my_models:tiny", "--layer-rates", "out=2"], "number in [0, 1)")):
        with pytest.raises(SystemExit) as exc:
            run_main(lottery_cli.main, argv + ["--root", str(tmp_path / "bad"), "--data-dir", str(mnist_root()),
                                           "--iterations", "5", "--quiet"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def mnist_root():
    return Path(os.environ["SUPERMASK_DATA"])


def readme_example(section="## Bring your own model"):
    """The Python block of a README section."""
    text = (REPO / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text.split(section, 1)[1], re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path, mnist, monkeypatch):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    rows = namespace["rows"][0]
    assert [r["level"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["best_val_accuracy"] > 0.9  # it learned MNIST
    experiment = next((tmp_path / "runs" / "mine").iterdir())
    masks = store.load_arrays(paths.masks(paths.level(paths.trial(experiment, 0), 3)))
    assert masks["logits"].all()
    # The results block of the README reads that experiment back and loads its ticket (in a fresh
    # process: `import supermask` alone must register the layers for keras.saving.load_model).
    code = readme_example("## Reports: tables and figures")
    script = tmp_path / "readme_results.py"
    script.write_text(code + "\nimport numpy as np\nfrom supermask.masks import get_masks\n"
                             "assert all(np.count_nonzero(plain.get_layer(k).kernel) == int(m.sum())\n"
                             "           for k, m in get_masks(ticket).items() if '/' not in k)\n"
                             "print('ok', type(plain.get_layer('logits')).__name__)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "val_loss [0]" and "ok Dense" in done.stdout


def test_from_arrays_names_the_data_by_content():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.integers(0, 4, 50)
    a = from_arrays((x, y), (x[:10], y[:10]), validation_size=10)
    b = from_arrays((x, y), (x[:10], y[:10]), validation_size=10)
    c = from_arrays((x + 1, y), (x[:10], y[:10]), validation_size=10)
    assert a.name == b.name != c.name and a.name.startswith("arrays:")
    assert (len(a.x_train), len(a.x_val), a.num_classes, a.input_shape) == (40, 10, 4, (3,))
    with pytest.raises(ConfigError, match="validation_size"):
        from_arrays((x, y), (x, y), validation_size=50)
    assert sys.modules["supermask.data"].is_in_memory(a.name)


def test_masked_layer_args_survive_a_round_trip(tmp_path):
    layer = MaskedDense(3, kernel_regularizer=keras.regularizers.L2(0.1), name="d")
    model = keras.Sequential([keras.Input((2,)), layer])
    assert len(model.losses) == 1
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.layers[0].kernel_regularizer, keras.regularizers.L2)
    with pytest.raises(ConfigError, match="freeze_pruned"):
        MaskedDense(3, kernel_regularizer="l2", freeze_pruned=True)


def test_export_expands_nested_blocks_and_the_native_builder_refuses_subclassed_models(tmp_path):
    from supermask.export import export_model
    from supermask.export.errors import ExportError

    plain = keras.Sequential([keras.Input((6, 6, 1)),
                              keras.Sequential([keras.layers.Conv2D(3, 3, activation="relu", name="c")], name="blk"),
                              keras.layers.Flatten(), keras.layers.Dense(2, name="o")])
    model = convert.masked(plain)
    rng = np.random.default_rng(8)
    M.set_masks(model, {name: rng.random(m.shape) < 0.5 for name, m in M.get_masks(model).items()})
    report = export_model(model, tmp_path / "nested.onnx")  # verified against Keras in onnxruntime
    assert report.check.within() and [d["layer"] for d in report.layers] == ["blk/c", "o"]
    residual = convert.masked(residual_model())
    _randomize(residual, seed=9)
    report = export_model(residual, tmp_path / "graph.onnx")  # nested Sequential, Add, BN folded, GAP
    assert report.check.within() and report.check.argmax_agreement == 1.0
    assert [d["layer"] for d in report.layers] == ["stem", "block/conv", "down", "hidden", "head"]
    # The native graph builder refuses a subclassed model (the default exporter="auto" then takes the
    # standard route, tests/test_export.py).
    with pytest.raises(ExportError, match=r"supermask.convert.strip\(model\)"):
        export_model(convert.masked(_subclassed()), tmp_path / "subclassed.onnx", exporter="native")
    assert not (tmp_path / "subclassed.onnx").exists()
