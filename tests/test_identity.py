"""What a run is: fingerprints of the built model and the data, resolved values spelled out, and
own models given every way a researcher gives them (builders, instances, subclassed models)."""

import json
import sys

import keras
import numpy as np
import pytest

from supermask import identity, init_sweep, lottery, paths, results, store, train
from supermask.errors import ConfigError
from supermask.models import build, model_label
from supermask.models import build as build_model

SHAPE = {"width": 32, "activation": "relu"}
# Folder naming and resume checks are backend-free: those tests train on one backend (JAX); what
# touches a backend (building, converting, calling, training a subclassed model) runs on every one.
on_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="backend-free orchestration: run once, on JAX")


def changing(input_shape, num_classes):
    """A builder whose width and activation a test changes between runs (as a researcher edits one)."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(SHAPE["width"], activation=SHAPE["activation"])(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


def tiny_arrays(n=240, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 1)).astype("float32")
    y = (x[:, :3].sum(axis=(1, 2, 3)) > 0).astype("int32") + (x[:, 3:].sum(axis=(1, 2, 3)) > 0)
    return (x[:160], y[:160] % classes), (x[160:200], y[160:200] % classes), (x[200:], y[200:] % classes)


@pytest.fixture(autouse=True)
def restore_shape():
    yield
    SHAPE.update(width=32, activation="relu")


def test_the_fingerprint_sees_the_architecture_not_the_values_or_the_seed():
    def fingerprint(seed=0, **change):
        SHAPE.update(change)
        return identity.model_fingerprint(build(model_label(changing), (6, 6, 1), 3, seed=seed))

    base = fingerprint()
    assert fingerprint(seed=7) == base  # other initial values, one architecture
    assert fingerprint(width=64) != base
    assert fingerprint(width=32, activation="tanh") != base
    assert identity.model_fingerprint(build("fc", (28, 28, 1), 10, seed=0)) == \
        identity.model_fingerprint(build("fc", (28, 28, 1), 10, seed=3))


@pytest.mark.slow
@on_jax
def test_a_changed_builder_starts_a_new_experiment_and_never_joins_the_old_one(tmp_path):
    data = tiny_arrays()
    run = lambda: lottery.run(model=changing, data=data, levels=0, iterations=10, eval_every=10,  # noqa: E731
                              root=tmp_path, verbose=0)
    run()
    SHAPE.update(width=64)
    run()  # not told to --resume: a new folder
    SHAPE.update(width=32, activation="tanh")
    run()
    folders = results.find_experiments(tmp_path)
    assert len(folders) == 3
    widths = sorted(store.load_arrays(paths.weights_init(paths.level(paths.trial(f, 0), 0)))["dense/kernel"].shape[1]
                    for f in folders)
    assert widths == [32, 32, 64]
    assert len({json.loads(paths.hparams(f).read_text())["model_fingerprint"] for f in folders}) == 3


@pytest.mark.slow
@on_jax
def test_resuming_a_built_in_with_another_architecture_or_other_data_is_refused(tmp_path, small_mnist):
    from supermask.data import Dataset

    lottery.run(model="fc", data=small_mnist, levels=1, iterations=20, eval_every=10, root=tmp_path, verbose=0)
    exp = results.find_experiments(tmp_path)[0]
    hparams = json.loads(paths.hparams(exp).read_text())
    assert len(hparams["model_fingerprint"]) == 16 and len(hparams["data_fingerprint"]) == 16
    # The same name, other bytes: a dataset called "mnist" whose files changed.
    changed = Dataset("mnist", small_mnist.x_train[::-1].copy(), small_mnist.y_train[::-1].copy(), small_mnist.x_val,
                      small_mnist.y_val, small_mnist.x_test, small_mnist.y_test)
    with pytest.raises(ConfigError, match="was run with another data of dataset 'mnist'") as info:
        lottery.run(model="fc", data=changed, levels=2, iterations=20, eval_every=10, root=tmp_path, verbose=0,
                    resume=True)
    assert "\n" not in str(info.value)
    # A built-in whose code changed (simulated: another fingerprint on record).
    store.write_json(paths.hparams(exp), {**hparams, "model_fingerprint": "0" * 16})
    with pytest.raises(ConfigError, match="was run with another architecture of model 'fc'"):
        lottery.run(model="fc", data=small_mnist, levels=2, iterations=20, eval_every=10, root=tmp_path, verbose=0,
                    resume=True)
    assert not paths.level(paths.trial(exp, 0), 2).exists()
    # Folders from before fingerprints existed resume (and get them recorded).
    store.write_json(paths.hparams(exp), {k: v for k, v in hparams.items() if not k.endswith("_fingerprint")})
    lottery.run(model="fc", data=small_mnist, levels=2, iterations=20, eval_every=10, root=tmp_path, verbose=0,
                resume=True)
    assert json.loads(paths.hparams(exp).read_text())["model_fingerprint"] == hparams["model_fingerprint"]


@on_jax
def test_hparams_spell_out_every_value_the_run_used(tmp_path, small_mnist):
    lottery.run(model="fc", data=small_mnist, levels=0, iterations=10, eval_every=10, root=tmp_path, verbose=0)
    hparams = json.loads(paths.hparams(results.find_experiments(tmp_path)[0]).read_text())
    assert {k: hparams[k] for k in ("optimizer", "momentum", "weight_decay", "lr_schedule", "milestones", "warmup",
                                    "augment", "pruning", "prune_ignore", "rate_fc", "rate_output", "early_stop")} == {
        "optimizer": "adam", "momentum": 0.0, "weight_decay": 0.0, "lr_schedule": "constant", "milestones": [],
        "warmup": 0, "augment": False, "pruning": "layerwise", "prune_ignore": [], "rate_fc": 0.2,
        "rate_output": 0.1, "early_stop": "val_loss"}
    # Only what does not apply stays null: conv rates of a dense net, the global rate of layer-wise pruning,
    # the step schedule's factor of a constant rate, epochs (resolved into iterations), and the fingerprint
    # of your own criterion (a built-in is named by its name).
    assert sorted(k for k, v in hparams.items() if v is None) == ["criterion_fingerprint", "epochs", "gamma",
                                                                   "global_rate", "rate_conv"]


class SubclassedSoftmax(keras.Model):
    def __init__(self, num_classes=3, **kwargs):
        super().__init__(**kwargs)
        self.flat, self.dense = keras.layers.Flatten(), keras.layers.Dense(num_classes)

    def call(self, x):
        return keras.ops.softmax(self.dense(self.flat(x)))


def _sequential(last):
    def builder(input_shape, num_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), *last(num_classes)])

    return builder


@pytest.mark.parametrize("make, what", [
    (_sequential(lambda n: [keras.layers.Dense(n), keras.layers.Softmax()]), "softmax"),
    (_sequential(lambda n: [keras.layers.Dense(n), keras.layers.Activation("softmax")]), "softmax"),
    (_sequential(lambda n: [keras.layers.Dense(n, activation="softmax")]), "softmax"),
    (_sequential(lambda n: [keras.layers.Dense(n, activation="sigmoid")]), "sigmoid"),
    (lambda input_shape, num_classes: SubclassedSoftmax(num_classes), "softmax"),
])
def test_models_that_output_probabilities_are_refused_whatever_makes_them(make, what):
    make.__qualname__ = f"probabilities_{what}"
    with pytest.raises(ConfigError, match=f"outputs {what} probabilities") as info:
        build(model_label(make), (6, 6, 1), 3)
    assert "\n" not in str(info.value)
    # Logits are fine, a final ReLU too.
    build(model_label(_sequential(lambda n: [keras.layers.Dense(n), keras.layers.ReLU()])), (6, 6, 1), 3)


class NoTraining(keras.Model):
    """A subclassed model whose call takes no ``training`` argument."""

    def __init__(self, num_classes=3, **kwargs):
        super().__init__(**kwargs)
        self.flat, self.hidden = keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(num_classes)

    def call(self, x):
        return self.out(self.hidden(self.flat(x)))


def no_training(input_shape, num_classes):
    model = NoTraining(num_classes)
    model(keras.KerasTensor((None, *input_shape)))
    return model


def test_a_subclassed_call_without_training_trains_on_every_backend():
    metrics = train.run(model=no_training, data=tiny_arrays(), iterations=20, eval_every=10, verbose=0)
    assert metrics["summary"]["early_stop_iteration"] in (0, 10, 20)
    assert np.isfinite(metrics["history"][-1]["val_loss"])


@pytest.mark.slow
def test_a_model_instance_is_its_own_initialisation_and_is_never_modified(tmp_path):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 6, 1))
    mine = keras.Model(inputs, keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inputs)))
    before = [w.copy() for w in mine.get_weights()]
    lottery.run(model=mine, data=tiny_arrays(), levels=1, iterations=20, eval_every=10, root=tmp_path, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, mine.get_weights()))
    assert type(mine.get_layer("logits")) is keras.layers.Dense  # not converted in place
    exp = results.find_experiments(tmp_path)[0]
    init = store.load_arrays(paths.weights_init(paths.level(paths.trial(exp, 0), 0)))
    np.testing.assert_array_equal(init["logits/kernel"], before[0])
    assert json.loads(paths.hparams(exp).read_text())["model"].startswith("instance:Functional:")
    with pytest.raises(ConfigError, match="not built"):
        lottery.run(model=keras.Sequential([keras.layers.Dense(3)]), data=tiny_arrays(), levels=0, root=tmp_path)


def test_build_model_is_build_for_builders_too(tmp_path, monkeypatch):
    (tmp_path / "own_models.py").write_text(
        "import keras\n"
        "def two(input_shape, num_classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Dense(8, name='hidden')(keras.layers.Flatten()(inputs))\n"
        "    return keras.Model(inputs, keras.layers.Dense(num_classes, name='logits')(x))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "own_models", raising=False)
    from supermask.convert import prunable_layers

    assert list(prunable_layers(build_model("own_models:two", (6, 6, 1), 3))) == ["hidden", "logits"]
    assert list(prunable_layers(build("own_models:two", (6, 6, 1), 3))) == ["hidden", "logits"]


@on_jax
def test_the_init_sweep_runs_on_own_models(tmp_path):
    data = tiny_arrays()
    train.run(model=changing, data=data, iterations=20, eval_every=10, out=tmp_path / "run", verbose=0)
    from supermask.data import as_dataset

    rows = init_sweep.sweep(tmp_path / "run", criteria_names="large_final", powers="0:3", data=as_dataset(data),
                            out=False, verbose=0)
    # Kind rates as the lottery's: hidden dense 0.2, the output layer 0.1 (bases 0.8, 0.9).
    from supermask.pruning import keep_count

    assert [r["density_dense"] for r in rows] == pytest.approx([keep_count(36 * 32, 0.2, p) / (36 * 32)
                                                                for p in range(3)])
    assert [r["density_logits"] for r in rows] == pytest.approx([keep_count(32 * 3, 0.1, p) / (32 * 3)
                                                                 for p in range(3)])


def test_a_builder_that_raises_and_duplicate_layer_names_are_one_line_each():
    def broken(input_shape, num_classes):
        raise RuntimeError("width must be even\nsee docs")

    with pytest.raises(ConfigError, match=r"The model builder '.*broken' raised RuntimeError: width must be even "
                                          "see docs") as info:
        build(model_label(broken), (6, 6, 1), 3)
    assert "\n" not in str(info.value)

    def twins(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(4, name="same")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Dense(num_classes, name="same")(x))

    with pytest.raises(ConfigError, match="twins' raised ValueError: .*same") as info:
        build(model_label(twins), (6, 6, 1), 3)
    assert "\n" not in str(info.value)
