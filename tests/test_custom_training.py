"""``supermask.imp`` around your own training, gradual pruning inside ``fit`` (every backend), and the
README's examples of "Use it with your own training" (every backend; imp's orchestration once, on JAX)."""

import keras
import numpy as np
import pytest

import supermask
from supermask import paths, results, store
from supermask import masks as M
from supermask.callbacks import PolynomialDecay
from supermask.errors import ConfigError
from tests.conftest import on_jax
from tests.test_callbacks import read_scalars
from tests.test_tickets import readme_blocks


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(hidden))
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@on_jax  # orchestration and numpy: the README test runs imp on every backend
def test_imp_writes_the_lottery_folders_resumes_and_follows_the_lottery_masks(tmp_path, small_mnist):
    data = small_mnist
    calls = []

    def train(model):  # no callbacks: one record after training
        calls.append(model)
        model.fit(data.x_train[:600], data.y_train[:600], batch_size=60, epochs=1, verbose=0)

    model = small_model()
    w0 = supermask.snapshot(model)
    kwargs = dict(levels=1, validation=(data.x_val, data.y_val), test=(data.x_test, data.y_test), root=tmp_path,
                  settings={"examples": 600}, verbose=0)
    experiment = supermask.imp(model, train, **kwargs)
    assert len(calls) == 3  # level 0, level 1's ticket and control
    trial = paths.trial(experiment.path, 0)
    level0, level1 = paths.level(trial, 0), paths.level(trial, 1)
    for folder in (level0, level1, paths.control(level1)):
        assert {p.name for p in folder.iterdir()} >= {"weights_init.h5", "weights_final.h5", "masks.h5",
                                                      "model.keras", "metrics.json"}
    for key, value in w0.items():  # your model is untouched, and W0 is level 0's start
        np.testing.assert_array_equal(supermask.snapshot(model)[key], value)
        np.testing.assert_array_equal(store.load_arrays(paths.weights_init(level0))[key], value)
    # Level 1's masks are the lottery's: the 80 % (hidden) / 90 % (logits) largest final weights of level 0.
    final = store.load_arrays(paths.weights_final(level0))
    masks = store.load_arrays(paths.masks(level1))
    for name, keep in (("hidden", round(784 * 32 * 0.8)), ("logits", round(320 * 0.9))):
        w = np.abs(final[f"{name}/kernel"])
        assert masks[name].sum() == keep and w[masks[name]].min() >= w[~masks[name]].max()
    start = store.load_arrays(paths.weights_init(level1))  # reset to W0 on the kept weights
    np.testing.assert_array_equal(start["hidden/kernel"], w0["hidden/kernel"] * masks["hidden"])
    rows = experiment.trials[0]
    assert [r["level"] for r in rows] == [0, 1] and rows[1]["control_test_accuracy_at_early_stop"] is not None
    assert rows[0]["test_accuracy_at_early_stop"] > 0.3  # it learned (chance: 0.1)
    history = results.level_history(trial, 1)
    assert len(history) == 1 and history[0]["iteration"] == 10
    # A rerun resumes: nothing is trained again; one more level trains only that level.
    supermask.imp(model, train, **kwargs)
    assert len(calls) == 3
    supermask.imp(model, train, **{**kwargs, "levels": 2})
    assert len(calls) == 5 and results.load_experiment(experiment.path).trials[0][2]["percent_remaining"] < 70
    # Another train_fn setting is another experiment.
    other = supermask.imp(model, train, **{**kwargs, "settings": {"examples": 601}, "control": False})
    assert other.path != experiment.path and len(calls) == 7


@on_jax  # orchestration and numpy: the README test runs imp on every backend
def test_imp_records_through_callbacks_and_rewinds_late(tmp_path, small_mnist):
    data = small_mnist

    def train(model, callbacks):
        model.fit(data.x_train[:600], data.y_train[:600], batch_size=60, epochs=2, callbacks=callbacks, verbose=0)

    experiment = supermask.imp(small_model(), train, levels=1, validation=(data.x_val, data.y_val),
                               root=tmp_path / "runs", eval_every=5, rewind_iteration=5, control=False, verbose=0,
                               tensorboard=tmp_path / "tb")
    trial = paths.trial(experiment.path, 0)
    assert [r["iteration"] for r in results.level_history(trial, 0)] == [0, 5, 10, 15, 20]
    # TensorBoard: one run per network (x = iteration), the densities per level in the trial's folder.
    board = tmp_path / "tb" / experiment.path.name / "trial_0"
    level0 = read_scalars(board / "level_0")
    assert [step for step, _ in level0["val/accuracy"]] == [0, 5, 10, 15, 20] and "train/loss" in level0
    assert sorted(step for step, _ in read_scalars(board)["density/overall"]) == [0, 1]  # one file per level
    rewind = store.load_arrays(paths.weights_rewind(paths.level(trial, 0)))
    start = store.load_arrays(paths.weights_init(paths.level(trial, 1)))
    masks = store.load_arrays(paths.masks(paths.level(trial, 1)))
    np.testing.assert_array_equal(start["hidden/kernel"], rewind["hidden/kernel"] * masks["hidden"])
    assert not np.array_equal(rewind["hidden/kernel"], store.load_arrays(
        paths.weights_init(paths.level(trial, 0)))["hidden/kernel"])


@on_jax  # orchestration and numpy: the README test runs imp on every backend
def test_imp_refuses_bad_input_in_one_line(tmp_path, small_mnist):
    model, data = small_model(), small_mnist
    val = (data.x_val, data.y_val)
    for kwargs, message in (({}, "evaluates every network"),
                            ({"validation": val, "rewind_iteration": 5}, "second argument, callbacks"),
                            ({"validation": val, "levels": -1}, "levels must be an integer"),
                            ({"validation": val, "rate": {"nope": 0.1}}, "not prunable layers"),
                            ({"validation": (data.x_val, data.y_val[:3])}, "same number")):
        with pytest.raises(ConfigError, match=message):
            supermask.imp(model, lambda m: None, **{"levels": 1, "root": tmp_path, **kwargs})
    assert not any(tmp_path.iterdir())


def test_gradual_pruning_masks_hold_from_the_step_they_are_set(small_mnist):
    """A mask set by the callback before step t is the mask step t uses (on JAX, fit keeps the weights
    outside the model): pruned from step 0 equals pruned before fit; the schedule's sparsity is reached."""
    x, y = small_mnist.x_train[:300], small_mnist.y_train[:300]
    first = supermask.masked(small_model())
    second = supermask.masked(small_model())
    callback = supermask.GradualPruning(supermask.ConstantSparsity(0.7, begin_step=0, frequency=1000))
    first.fit(x, y, batch_size=30, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    supermask.prune(second, sparsity=0.7)
    second.fit(x, y, batch_size=30, epochs=1, shuffle=False, verbose=0)
    assert callback.pruned_at == [(0, 0.7)]
    for key, value in supermask.snapshot(second).items():
        np.testing.assert_allclose(supermask.snapshot(first)[key], value, atol=1e-6, err_msg=key)
    assert {k: v.sum() for k, v in M.get_masks(first).items()} == {k: v.sum() for k, v in M.get_masks(second).items()}


@on_jax  # orchestration and numpy: the README test runs imp on every backend
def test_polynomial_decay_follows_zhu_and_gupta():
    schedule = PolynomialDecay(0.1, 0.9, begin_step=10, end_step=50, frequency=10)
    got = {step: schedule(step) for step in range(0, 61)}
    expected = {t: 0.9 + (0.1 - 0.9) * (1 - (t - 10) / 40) ** 3 for t in (10, 20, 30, 40, 50)}
    assert {s: v for s, v in got.items() if v is not None} == pytest.approx(expected)
    assert PolynomialDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()
    # A callback that sees every n-th step only (steps_per_execution) catches up with the last one due.
    assert [schedule.pruning_step(t) for t in (0, 9, 10, 19, 33, 50, 99)] == [None, None, 10, 10, 30, 50, 50]
    constant = supermask.ConstantSparsity(0.5, begin_step=5, frequency=10)
    assert [constant.pruning_step(t) for t in (4, 5, 14, 15, 1000)] == [None, 5, 5, 15, 995]
    assert constant(15) == 0.5 and constant(16) is None
    with pytest.raises(ConfigError, match="final_sparsity must be >= initial_sparsity"):
        PolynomialDecay(0.5, 0.2, 0, 10)
    with pytest.raises(ConfigError, match="needs a model with masked layers"):
        small_model().fit(np.zeros((2, 28, 28, 1)), np.zeros(2), verbose=0,
                          callbacks=[supermask.GradualPruning(schedule)])


def test_the_readme_examples_run_as_written(tmp_path, mnist, monkeypatch):
    one_shot, own, gradual, criterion = readme_blocks()
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_own_training"}
    exec(compile(own, "README.md", "exec"), namespace)
    experiment = namespace["experiment"]
    assert [r["level"] for r in experiment.summary] == [0, 1, 2]
    assert experiment.summary[0]["test_accuracy_at_early_stop_mean"] > 0.8
    assert experiment.summary[2]["control_test_accuracy_at_early_stop_mean"] is not None
    exec(compile(gradual, "README.md", "exec"), namespace)
    assert abs(supermask.sparsity(namespace["model"]).density - 0.1) < 1e-3
    assert "sparsity" in (tmp_path / "pruning.csv").read_text().splitlines()[0]
    exec(compile(criterion, "README.md", "exec"), namespace)
    try:
        pruned = supermask.prune(namespace["model"], rate=0.5, criterion="final_plus_movement",
                                 reference=namespace["model"])
        assert abs(supermask.sparsity(pruned).density - 0.05) < 1e-3
    finally:
        supermask.criteria.unregister("final_plus_movement")
