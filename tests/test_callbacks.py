"""Keras callbacks at the engine's record points, TensorBoard scalars, progress lines, quiet start-up.

Small on purpose: a 6-8-3 MLP on synthetic arrays for the callbacks (both engines), a few dozen
iterations of fc on a slice of MNIST for the entry points. The results asserted are behaviour
(rows, keys, values against the history), never timings.
"""

import contextlib
import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from supermask import lottery, recipes
from supermask import masks as M
from supermask import train_supermask
from supermask.data import Dataset
from supermask.engine import train_many
from supermask.engine.callbacks import EventWriter, Network, for_networks, resolve
from supermask.engine.driver import Progress
from supermask.errors import ConfigError
from supermask.optimizers import compile_model
from supermask.settings import SupermaskConfig
from supermask.train import __main__ as train_cli
from supermask.train import train_model

ENGINES = ("compiled", "fit")


def tiny_data(seed=0):
    """240 / 50 / 40 examples of 6 features, 3 classes."""
    rng = np.random.default_rng(seed)
    splits = [(rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32))
              for n in (240, 50, 40)]
    return Dataset("tiny", *(a for split in splits for a in split), classes=3)


def tiny_model(seed=0):
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(8, "relu", kernel_initializer=keras.initializers.GlorotUniform(seed)),
                              keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed + 1))])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


class Recorder(keras.callbacks.Callback):
    """Records every hook call, the logs, and the model's weights at each record point."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.calls, self.weights, self.stop_at = [], [], stop_at

    def on_train_begin(self, logs=None):
        self.calls.append(("begin", dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append((epoch, dict(logs)))
        self.weights.append(M.get_weights(self.model))
        if epoch == self.stop_at:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.calls.append(("end", dict(logs)))


def keras_logs(row):
    names = {"train_loss": "loss", "train_accuracy": "accuracy", "val_loss": "val_loss",
             "val_accuracy": "val_accuracy", "test_loss": "test_loss", "test_accuracy": "test_accuracy"}
    return {names[k]: v for k, v in row.items() if k in names and v is not None}


@pytest.mark.parametrize("engine", ENGINES)
def test_csv_logger_writes_one_row_per_record_point_matching_the_history(tmp_path, engine):
    keras.backend.clear_session()
    path = tmp_path / "log.csv"
    result = train_model(tiny_model(), tiny_data(), iterations=60, batch_size=20, eval_every=20, verbose=0,
                         engine=engine, callbacks=[keras.callbacks.CSVLogger(str(path))])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert set(rows[0]) == {"epoch", "iteration", "loss", "accuracy", "val_loss", "val_accuracy", "test_loss",
                            "test_accuracy"}
    for row, recorded in zip(rows, result.history[1:]):
        assert int(row["iteration"]) == recorded["iteration"]
        for key, value in keras_logs(recorded).items():
            assert float(row[key]) == pytest.approx(value, rel=1e-6), key


@pytest.mark.parametrize("engine", ENGINES)
def test_callbacks_see_current_weights_and_change_no_result(engine):
    """Each hook in order with the history's logs; the weights read at the last record point are the
    final ones. On the compiled engine (whose JAX form keeps its state outside the model) the
    results are bit for bit those of a run without callbacks."""
    data, runs = tiny_data(), {}
    for watched in (False, True) if engine == "compiled" else (True,):
        keras.backend.clear_session()
        models = [tiny_model(0), tiny_model(2)]
        recorders = [Recorder(), Recorder()]
        results = train_many(models, data, iterations=60, batch_size=20, seeds=[0, 1], eval_every=20, verbose=0,
                             engine=engine, callbacks=[[r] for r in recorders] if watched else None)
        runs[watched] = results, [M.get_weights(m) for m in models], recorders
    results, final_w, recorders = runs[True]
    for k in range(2):
        if False in runs:
            plain, plain_w, _ = runs[False]
            assert [{**r, "seconds": 0} for r in results[k].history] == \
                [{**r, "seconds": 0} for r in plain[k].history]
            for key in final_w[k]:
                np.testing.assert_array_equal(final_w[k][key], plain_w[k][key])
        calls = recorders[k].calls
        assert [c[0] for c in calls] == ["begin", 0, 1, 2, "end"]
        assert calls[0][1] == {**keras_logs(results[k].history[0]), "iteration": 0}
        for (_, logs), row in zip(calls[1:4], results[k].history[1:]):
            assert logs == {**keras_logs(row), "iteration": row["iteration"]}
        seen = recorders[k].weights
        for key in final_w[k]:  # the weights at the last record point are the final ones, the first differ
            np.testing.assert_array_equal(seen[-1][key], final_w[k][key])
        assert any(not np.array_equal(seen[0][key], final_w[k][key]) for key in final_w[k])


@pytest.mark.parametrize("engine", ENGINES)
def test_stop_training_stops_that_network_alone(engine):
    data = tiny_data()
    keras.backend.clear_session()
    models = [tiny_model(0), tiny_model(2)]
    stopper = Recorder(stop_at=1)
    results = train_many(models, data, iterations=80, batch_size=20, seeds=[0, 1], eval_every=20, verbose=0,
                         engine=engine, callbacks=[[], [stopper]])
    # Network 1 stopped at its second record point (iteration 40): history, weights and hooks end there.
    assert [r["iteration"] for r in results[1].history] == [0, 20, 40]
    assert [c[0] for c in stopper.calls] == ["begin", 0, 1, "end"]
    for key, value in M.get_weights(models[1]).items():
        np.testing.assert_array_equal(value, stopper.weights[-1][key])
    # Network 0 trained on to the end, as if alone.
    assert [r["iteration"] for r in results[0].history] == [0, 20, 40, 60, 80]
    if engine == "compiled":
        keras.backend.clear_session()
        alone = train_model(tiny_model(0), data, iterations=80, batch_size=20, seed=0, eval_every=20, verbose=0)
        assert results[0].history[-1]["test_loss"] == pytest.approx(alone.history[-1]["test_loss"], rel=1e-6)
        # When every network asks, training ends.
        keras.backend.clear_session()
        both = [Recorder(stop_at=0), Recorder(stop_at=2)]
        results = train_many([tiny_model(0), tiny_model(2)], data, iterations=80, batch_size=20, seeds=[0, 1],
                             eval_every=20, verbose=0, engine=engine, callbacks=lambda net: [both[net.index]])
        assert [len(r.history) for r in results] == [2, 4]


def test_callbacks_given_as_a_list_for_several_networks_are_refused():
    networks = [Network("trial 0 ticket", "t"), Network("trial 0 control", "c", 1)]
    with pytest.raises(ConfigError, match="pass a function network -> list of callbacks"):
        resolve([keras.callbacks.Callback()], networks)
    with pytest.raises(ConfigError, match="keras.callbacks.Callback instances"):
        resolve(lambda net: ["not a callback"], networks)
    with pytest.raises(ConfigError, match="one list per network, 2 in all"):
        resolve([[]], networks)


def read_scalars(folder):
    """{tag: [(step, value)]} of every event file under ``folder`` (this folder only)."""
    tf = pytest.importorskip("tensorflow")
    out = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                else:  # tf.summary's tensors (Keras's TensorBoard); its text summaries skipped
                    array = tf.make_ndarray(value.tensor)
                    if array.dtype.kind not in "fiu":
                        continue
                    number = float(array)
                out.setdefault(value.tag, []).append((event.step, number))
    return out


def test_event_writer_files_read_back_in_tensorflow(tmp_path):
    writer = EventWriter(tmp_path)
    writer.scalars(0, {"val/loss": 2.5})
    writer.scalars(300, {"val/loss": 0.25, "test/accuracy": 0.5})
    writer.close()
    assert read_scalars(tmp_path) == {"val/loss": [(0, 2.5), (300, 0.25)], "test/accuracy": [(300, 0.5)]}


def test_keras_tensorboard_callback_works(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorboard", reason="keras.callbacks.TensorBoard needs the tensorboard package")
    keras.backend.clear_session()
    callback = keras.callbacks.TensorBoard(str(tmp_path / "tb"))
    train_model(tiny_model(), tiny_data(), iterations=40, batch_size=20, eval_every=20, verbose=0,
                callbacks=[callback])
    train, validation = read_scalars(tmp_path / "tb" / "train"), read_scalars(tmp_path / "tb" / "validation")
    assert [step for step, _ in train["epoch_loss"]] == [0, 1] and "epoch_test_accuracy" in train
    assert [step for step, _ in validation["epoch_loss"]] == [0, 1]


@pytest.mark.slow
def test_lottery_tensorboard_runs_per_network_and_density_per_level(tmp_path, small_mnist):
    keras.backend.clear_session()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lottery.run(model="fc", data=small_mnist, levels=1, iterations=40, eval_every=20, root=tmp_path / "root",
                    tensorboard=tmp_path / "tb")
    trial = next((tmp_path / "tb").iterdir()) / "trial_0"
    for run in (trial / "level_0", trial / "level_1", trial / "level_1" / "control"):
        scalars = read_scalars(run)
        assert set(scalars) == {f"{s}/{m}" for s in ("train", "val", "test") for m in ("loss", "accuracy")}
        assert [step for step, _ in scalars["test/accuracy"]] == [0, 20, 40]
        assert [step for step, _ in scalars["train/loss"]] == [20, 40]
    density = read_scalars(trial)
    assert [step for step, _ in density["density/overall"]] == [0, 1]
    assert density["density/overall"][0][1] == 1.0 and 0.7 < density["density/overall"][1][1] < 0.9
    assert {"density/fc1", "density/fc2", "density/fc3"} <= set(density) or len(density) >= 3
    lines = [line for line in out.getvalue().splitlines() if " iteration 20/40 " in line]
    assert " | trial 0 ticket: loss " in lines[1] and " | trial 0 control: loss " in lines[1]
    assert " elapsed, ~" in lines[1] and lines[1].endswith(" left")


@pytest.mark.slow
def test_supermask_tensorboard_has_the_mask_density(tmp_path, small_mnist):
    """``train_supermask.run``'s TensorBoard callbacks (``for_networks`` with its density scalars)
    on one supermask network, trained directly (the run's final evaluations left out for time)."""
    keras.backend.clear_session()
    config = recipes.resolve(SupermaskConfig(model="fc", iterations=40, eval_every=20), small_mnist)
    model = train_supermask.build(config, small_mnist.input_shape, small_mnist.num_classes)
    compile_model(model, train_supermask.optimizer_for(config, 40))
    network = Network("seed 0", "run", seed=0, role="supermask")
    callbacks = for_networks(None, tmp_path / "tb", [network], extra=train_supermask._densities)
    train_many([model], small_mnist, iterations=40, batch_size=config.batch_size, seeds=[0], eval_every=20,
               verbose=0, callbacks=callbacks)
    scalars = read_scalars(tmp_path / "tb" / "run")
    assert [step for step, _ in scalars["density/total"]] == [0, 20, 40]
    assert {"density/total", "test/accuracy", "train/loss"} <= set(scalars) and len(scalars) > 8


@pytest.mark.slow
def test_train_cli_writes_tensorboard_scalars_and_timed_lines(tmp_path, mnist):
    keras.backend.clear_session()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train_cli.main(["--model", "fc", "--iterations", "20", "--eval-every", "10", "--data-dir",
                        os.environ["SUPERMASK_DATA"], "--out", str(tmp_path / "run"), "--tensorboard",
                        str(tmp_path / "tb")])
    lines = [line for line in out.getvalue().splitlines() if re.match(r"\d\d:\d\d:\d\d iteration ", line)]
    assert len(lines) == 2 and " elapsed, ~" in lines[0] and lines[1].endswith(" elapsed")
    assert lines[0].split(" | ")[1].startswith("loss ")
    (run,) = (tmp_path / "tb").iterdir()
    assert [step for step, _ in read_scalars(run)["val/accuracy"]] == [0, 10, 20]


@pytest.mark.slow
def test_no_tensorflow_start_up_lines_on_stderr():
    """A fresh process on this suite's backend seeds Keras (which imports TensorFlow where it is
    installed): none of TensorFlow's start-up lines reach stderr; a Python warning still does."""
    code = ("import supermask, keras, warnings; keras.utils.set_random_seed(0); import tensorflow; "
            "warnings.warn('still shown')")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SUPERMASK_TF_LOG")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    for noise in ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "TF-TRT", "I0000"):
        assert noise not in out.stderr, out.stderr
    assert "UserWarning: still shown" in out.stderr


def test_a_line_for_many_networks_shows_their_mean_and_the_best_and_worst():
    labels = [f"exp{k}/trial_0 ticket" for k in range(10)]
    progress = Progress(1000, labels, verbose=1)
    rows = {k: {"train_loss": 0.5, "train_accuracy": 0.9, "val_accuracy": 0.9, "test_accuracy": 0.8 + k / 100}
            for k in range(10)}
    line = progress.line(100, rows)
    assert " | mean of 10 networks: loss 0.5000, acc 90.00 %, val 90.00 %, test 84.50 % | " in line
    assert "test best 89.00 % (exp9/trial_0 ticket), worst 80.00 % (exp0/trial_0 ticket)" in line
    assert line.endswith(" left") and progress.line(1000, rows).endswith(" elapsed")
