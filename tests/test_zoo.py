"""ResNet-20 and VGG-16 with open_lth's recipe: builds, schedules, augmentation, weight decay, IMP with
late rewinding, and ONNX export of their graphs (every backend)."""

import keras
import numpy as np
import pytest

from supermask import recipes
from supermask import convert, lottery, paths, store, zoo
from supermask import masks as M
from supermask.settings import LotteryConfig
from supermask.data import Dataset
from supermask.engine import train_many
from supermask.engine.augment import AugmentStream, augment
from supermask.errors import ConfigError
from supermask.export import export_model, verify
from supermask.models import build
from supermask.pruning import keep_count
from supermask.schedules import Schedule
from supermask.train import compile_model, make_optimizer, recipe_optimizer


def cifar_like(n=64, seed=0, classes=10, shape=(32, 32, 3)):
    """Tiny CIFAR-shaped data (the tests have no CIFAR-10 copy): a class-dependent mean plus noise."""
    rng = np.random.default_rng(seed)

    def split(count):
        y = rng.integers(0, classes, count).astype(np.int32)
        x = rng.normal(size=(count, *shape)).astype(np.float32) + (y[:, None, None, None] / classes)
        return x.astype(np.float32), y

    return Dataset("cifar10", *split(n), *split(16), *split(16))


@pytest.mark.slow
@pytest.mark.parametrize("make, total, prunable, layers", [
    (zoo.resnet20, 272_474, 270_896, 22),  # open_lth's test_cifar_resnet.py
    (zoo.vgg16, 14_728_266, 14_715_584, 14),  # open_lth's test_cifar_vgg.py
])
def test_built_ins_have_open_lths_parameter_counts(make, total, prunable, layers):
    plain = make()
    assert sum(int(np.prod(v.shape)) for v in plain.trainable_weights) == total
    model = build(make.__name__, (32, 32, 3), 10, seed=3)
    kernels = convert.prunable_layers(model)
    assert len(kernels) == layers and list(kernels)[-1] == "output"
    assert sum(int(np.prod(layer.kernel.shape)) for layer in kernels.values()) == prunable
    # The seed fixes the initial weights.
    a, b = M.get_weights(build(make.__name__, (32, 32, 3), 10, seed=3)), M.get_weights(model)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(M.get_weights(build(make.__name__, (32, 32, 3), 10, seed=4))["output/kernel"],
                              a["output/kernel"])


def test_every_schedule_gives_the_documented_rate_at_its_milestones():
    step = Schedule(0.1, "step", milestones=(100, 150), gamma=0.1)
    assert [step.value_at(t) for t in (0, 99, 100, 149, 150, 10_000)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    warm = Schedule(0.1, "step", milestones=(100,), gamma=0.5, warmup=10)
    assert [warm.value_at(t) for t in (0, 5, 10, 99, 100)] == pytest.approx([0.0, 0.05, 0.1, 0.1, 0.05])
    cosine = Schedule(2.0, "cosine", total=100)
    assert [cosine.value_at(t) for t in (0, 50, 100, 200)] == pytest.approx([2.0, 1.0, 0.0, 0.0], abs=1e-6)
    assert Schedule(0.3).value_at(12345) == pytest.approx(0.3)
    # Late rewinding: a schedule offset to iteration 120 starts where the full one was at 120.
    rewound = Schedule(0.1, "step", milestones=(100, 150), gamma=0.1, offset=120)
    assert float(keras.ops.convert_to_numpy(rewound(0))) == pytest.approx(step.value_at(120))
    assert float(keras.ops.convert_to_numpy(rewound(30))) == pytest.approx(step.value_at(150))
    # The config's schedule reaches the optimiser, which saves and reloads it.
    config = recipes.resolve(LotteryConfig(model="resnet20", dataset="cifar10", iterations=400), 50_000)
    optimizer = recipe_optimizer(config, 400, start_iteration=7)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.9
    schedule = optimizer.learning_rate if isinstance(optimizer.learning_rate, Schedule) else optimizer._learning_rate
    assert schedule.get_config()["offset"] == 7 and schedule.milestones == config.milestones
    restored = Schedule.from_config(schedule.get_config())
    assert restored.value_at(31_250) == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="increasing"):
        Schedule(0.1, "step", milestones=(5, 5))


def test_augmentation_is_exact_reproducible_per_seed_and_differs_between_seeds():
    x = np.random.default_rng(0).normal(size=(6, 8, 8, 3)).astype("float32")
    choices = AugmentStream(6, seed=5).take(1)[0]
    out = np.asarray(keras.ops.convert_to_numpy(augment(x, choices)))
    for i, (dy, dx, flip) in enumerate(choices):
        window = np.pad(x[i], ((4, 4), (4, 4), (0, 0)))[dy:dy + 8, dx:dx + 8]
        np.testing.assert_array_equal(out[i], window[:, ::-1] if flip else window)
    assert np.array_equal(AugmentStream(6, seed=5).take(3), AugmentStream(6, seed=5).take(3))
    assert not np.array_equal(AugmentStream(6, seed=5).take(3), AugmentStream(6, seed=6).take(3))
    a = AugmentStream(6, seed=5)
    a.take(2)
    np.testing.assert_array_equal(a.take(1), AugmentStream(6, seed=5).take(3)[2:])  # resumes exactly


def _train(data, seed, **options):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="o")])
    model = convert.masked(model)
    compile_model(model, make_optimizer(0.05, name="sgd"))
    init = M.get_weights(model)
    train_many([model], data, iterations=3, batch_size=8, seeds=[seed], eval_every=3, verbose=0, **options)
    return init, M.get_weights(model)


@pytest.mark.slow
def test_training_with_augmentation_and_weight_decay_is_seeded_and_decays():
    data = cifar_like(n=32, shape=(8, 8, 3))
    _, a = _train(data, 1, augment=True)
    _, b = _train(data, 1, augment=True)
    _, c = _train(data, 2, augment=True)
    _, plain = _train(data, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # reproducible for a seed
    assert not np.array_equal(a["c/kernel"], c["c/kernel"])  # another seed, other crops (and batches)
    assert not np.array_equal(a["c/kernel"], plain["c/kernel"])  # the augmentation took effect
    with pytest.raises(ConfigError, match="augment crops and flips images"):
        flat = Dataset("arrays:x", data.x_train.reshape(32, -1), data.y_train, data.x_val.reshape(16, -1),
                       data.y_val, data.x_test.reshape(16, -1), data.y_test)
        model = convert.masked(keras.Sequential([keras.Input((192,)), keras.layers.Dense(10)]))
        compile_model(model, make_optimizer(0.1, name="sgd"))
        train_many([model], flat, iterations=1, batch_size=4, seeds=[0], augment=True, verbose=0)
    # One plain SGD step (no momentum): weight decay adds exactly lr * wd * w to the step.
    init, no_decay = _one_step(data, 0.0)
    _, decayed = _one_step(data, 0.5)
    np.testing.assert_allclose(decayed["o/kernel"], no_decay["o/kernel"] - 0.05 * 0.5 * init["o/kernel"],
                               rtol=1e-5, atol=1e-6)


def _one_step(data, weight_decay):
    keras.utils.set_random_seed(0)
    model = convert.masked(keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(),
                                             keras.layers.Dense(10, name="o")]))
    compile_model(model, make_optimizer(0.05, name="sgd"))
    init = M.get_weights(model)
    train_many([model], data, iterations=1, batch_size=8, seeds=[0], eval_every=1, verbose=0,
               weight_decay=weight_decay)
    return init, M.get_weights(model)


@pytest.mark.slow
def test_resnet20_prunes_globally_with_late_rewinding(tmp_path):
    """One level of IMP with rewinding to iteration 2 (open_lth's recipe: SGD, step schedule, weight decay,
    augmentation, global pruning of 20 %): the kept weights restart from the iteration-2 snapshot,
    BatchNormalization included, and the counts follow the closed form."""
    data = cifar_like()
    config = recipes.resolve(LotteryConfig(model="resnet20", dataset="cifar10", iterations=6, batch_size=8, eval_every=3, levels=1,
                           rewind_iteration=2, control=False), len(data.x_train))
    rows = lottery.run_trial(config, data, tmp_path / "trial_0", verbose=0)
    level0, level1 = (paths.level(tmp_path / "trial_0", level) for level in (0, 1))
    rewind = store.load_arrays(paths.weights_rewind(level0))
    init = store.load_arrays(paths.weights_init(level0))
    start = store.load_arrays(paths.weights_init(level1))
    masks = store.load_arrays(paths.masks(level1))
    assert sum(int(m.sum()) for m in masks.values()) == keep_count(270_896, 0.2, 1)
    assert not np.array_equal(rewind["s1b1_conv1_bn/moving_mean"], init["s1b1_conv1_bn/moving_mean"])
    for key in ("s1b1_conv1_bn/moving_mean", "s3b1_shortcut_bn/gamma", "output/bias"):
        np.testing.assert_array_equal(start[key], rewind[key])
    kept = masks["s2b1_conv1"]
    np.testing.assert_array_equal(start["s2b1_conv1/kernel"][kept], rewind["s2b1_conv1/kernel"][kept])
    assert [r["level"] for r in rows] == [0, 1]
    history = store.read_json(paths.metrics(level1))["history"]
    assert history[0]["iteration"] == 2  # level 1 continues from the rewind point


@pytest.fixture(scope="module")
def pruned_models():
    """A pruned resnet20 and vgg16 (random global masks at 20 % / 10 %, non-trivial BN statistics)."""
    out = {}
    for name, density in (("resnet20", 0.2), ("vgg16", 0.1)):
        model = build(name, (32, 32, 3), 10, seed=1)
        rng = np.random.default_rng(2)
        for variable in model.weights:
            if "moving_mean" in variable.path or "beta" in variable.path:
                variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))
            if "moving_variance" in variable.path:
                variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
        M.set_masks(model, {k: rng.random(m.shape) < density for k, m in M.get_masks(model).items()})
        out[name] = model
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet20", "vgg16"])
def test_pruned_zoo_models_export_and_match_keras_in_onnxruntime(name, pruned_models, tmp_path):
    model = pruned_models[name]
    report = export_model(model, tmp_path / f"{name}.onnx")
    x = cifar_like(n=200, seed=9).x_train
    comparison = verify.compare(model, report.path, x)
    assert comparison.max_abs_diff <= 1e-4 * max(1.0, comparison.max_abs_logit)
    assert comparison.argmax_agreement == 1.0
    # BatchNormalization folded away: one Conv / Gemm per prunable layer, no BatchNormalization nodes.
    import onnx

    ops = [node.op_type for node in onnx.load(str(report.path)).graph.node]
    assert ops.count("Conv") + ops.count("Gemm") == len(convert.prunable_layers(model))
    assert "BatchNormalization" not in ops and ("Add" in ops) == (name == "resnet20")
    densities = {r["layer"]: r["density"] for r in report.layers}
    for key, mask in M.get_masks(model).items():
        assert densities[key] == pytest.approx(mask.mean(), abs=1e-9)
    dense = export_model(model, tmp_path / f"{name}_dense.onnx", storage="dense", verify=False)
    assert report.bytes < dense.bytes


def test_unfolded_batchnorm_and_layout_changes_export_exactly(tmp_path):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.BatchNormalization(name="bn_in")(inputs)  # no convolution before it: scale + offset
    a = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="a")(x)
    b = keras.layers.BatchNormalization(name="bn_after_relu")(a)  # after an activation: not foldable
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.AveragePooling2D(2, name="avg")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    model = convert.masked(keras.Model(inputs, keras.layers.Dense(3, name="out")(x)))
    rng = np.random.default_rng(3)
    for variable in model.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    report = export_model(model, tmp_path / "m.onnx")
    assert report.check.max_abs_diff <= 1e-4 * max(1.0, report.check.max_abs_logit)
