"""The backend-free part of every training run: schedule, history, progress, snapshots.

``train_many`` trains K compiled Keras models of one architecture on one ``Dataset``,
each with its own weights, masks, optimiser state and batch order (its seed), and
returns one ``TrainResult`` per model, exactly the rows ``supermask.train`` has always
recorded. The work between two record points (every ``eval_every`` iterations, each
snapshot iteration, the end) is one call of a backend ``Program``
(``supermask.engine.<backend>``, the interface in ``supermask.engine.program``): all
its steps, for all K models, in one compiled program, then the validation and test
evaluation in a second; nothing per step in Python. ``engine="fit"`` runs the
reference ``Program`` instead (``supermask.engine.fit``: Keras ``fit`` per chunk and
``evaluate`` at each record point, one model at a time).
"""

import os
import sys
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from supermask import backend
from supermask.engine import fit
from supermask.engine.callbacks import Hooks, Network, resolve
from supermask.engine.augment import AugmentStream
from supermask.engine.program import FORM_VARIABLE, compiled_loss
from supermask.errors import ConfigError, TrainingError
from supermask.masks import get_weights
from supermask.specs import DEFAULT_ENGINE, ENGINES


@dataclass
class TrainResult:
    """What a training run produced.

    history: one dict per recorded iteration (the start iteration included) with keys
        iteration, epoch, train_loss, train_accuracy (means over the iterations since
        the previous record; None at the start), val_loss, val_accuracy, test_loss,
        test_accuracy (full evaluations; None when a split is empty), seconds.
    snapshots: {iteration: masks.get_weights(model)} for the requested iterations.
    """

    history: list
    snapshots: dict = field(default_factory=dict)
    seconds: float = 0.0


class BatchStream:
    """The mini-batches of ``batch_order(num_examples, batch_size, ∞, seed)``, drawn lazily.

    The training split is shuffled afresh each epoch by ``np.random.default_rng(seed)``
    and the shuffled epochs are concatenated, so batches are always full and the order
    is the same on every backend and engine for the same seed. ``take(n)`` returns the
    next ``n`` batches as an int32 array ``(n, batch_size)``; memory stays one epoch.
    """

    def __init__(self, num_examples, batch_size, seed):
        if num_examples < 1:
            raise ConfigError("The training split is empty; lower --validation-size.")
        self.num_examples, self.batch_size = int(num_examples), int(batch_size)
        self.rng = np.random.default_rng(seed)
        self.buffer = np.empty(0, dtype=np.int64)

    def take(self, steps):
        needed = int(steps) * self.batch_size
        parts, have = [self.buffer], self.buffer.size
        while have < needed:
            parts.append(self.rng.permutation(self.num_examples))
            have += self.num_examples
        flat = np.concatenate(parts)
        self.buffer = flat[needed:]
        return flat[:needed].reshape(int(steps), self.batch_size).astype(np.int32)


def batch_order(num_examples, batch_size, iterations, seed):
    """Indices of every mini-batch: an int array of shape (iterations, batch_size)."""
    return BatchStream(num_examples, batch_size, seed).take(iterations)


def chunk_ends(start, iterations, eval_every, snapshot_iterations):
    """Iterations at which training pauses: every record and snapshot point, and the end."""
    ends = set(range(eval_every, iterations, eval_every)) | {iterations}
    ends |= {int(k) for k in snapshot_iterations if 0 < k < iterations}
    return sorted(e for e in ends if e > start)


class Progress:
    """Progress output: Keras's bar on a terminal, one plain line per record point elsewhere.

    A plain line starts with the time of day and ends with the time since ``train_many``
    started and an estimate of the time left (from the pace since the first record point,
    which leaves compilation out). With several networks it shows each apart, by its label
    (``label: loss, accuracy, val, test``), up to ``SHOWN`` of them; beyond, their mean and the
    best and worst test (else validation) accuracy. The bar shows means.
    """

    SHOWN = 8

    def __init__(self, iterations, labels, verbose, start_iteration=0):
        self.iterations, self.labels, self.start = iterations, list(labels), time.perf_counter()
        self.enabled = bool(verbose)
        self.pace = None  # (time, iteration) of the first record point: the estimate starts there
        self.start_iteration = start_iteration
        self.bar = None
        if self.enabled and sys.stdout.isatty():
            stateful = ["loss", "accuracy", "val_accuracy", "test_accuracy"]
            self.bar = keras.utils.Progbar(iterations, stateful_metrics=stateful)

    def update(self, iteration, rows):
        """``rows``: {model index: its history row} of the networks still training."""
        if not self.enabled or not rows:
            return
        if self.bar is not None:
            mean = {k: _mean([r[k] for r in rows.values()]) for k in METRICS}
            shown = [("loss", mean["train_loss"]), ("accuracy", mean["train_accuracy"])]
            shown += [(k, mean[k]) for k in ("val_accuracy", "test_accuracy") if mean[k] is not None]
            self.bar.update(iteration, values=shown)
            return
        print(self.line(iteration, rows), flush=True)

    def line(self, iteration, rows):
        now = time.perf_counter()
        head = f"{time.strftime('%H:%M:%S')} iteration {iteration}/{self.iterations}"
        if len(self.labels) == 1:
            body = [", ".join(_values(next(iter(rows.values())), long=True))]
        elif len(rows) <= self.SHOWN:
            body = [f"{self.labels[k]}: {', '.join(_values(row))}" for k, row in rows.items()]
        else:
            mean = {k: _mean([r[k] for r in rows.values()]) for k in METRICS}
            split = "test_accuracy" if mean["test_accuracy"] is not None else "val_accuracy"
            body = [f"mean of {len(rows)} networks: {', '.join(_values(mean))}"]
            ranked = sorted((r[split], k) for k, r in rows.items() if r[split] is not None)
            if ranked:
                body.append(f"{split.split('_')[0]} best {100 * ranked[-1][0]:.2f} % ({self.labels[ranked[-1][1]]}), "
                            f"worst {100 * ranked[0][0]:.2f} % ({self.labels[ranked[0][1]]})")
        timing = f"{duration(now - self.start)} elapsed"
        if self.pace is None:
            self.pace = (now, iteration)
            rate = (now - self.start) / max(iteration - self.start_iteration, 1)
        else:
            rate = (now - self.pace[0]) / max(iteration - self.pace[1], 1)
        if iteration < self.iterations:
            timing += f", ~{duration(rate * (self.iterations - iteration))} left"
        return " | ".join([head, *body, timing])


METRICS = ("train_loss", "train_accuracy", "val_accuracy", "test_accuracy")


def _values(row, long=False):
    """``loss 0.2345, accuracy 93.10 %, val 92.50 %, test 92.80 %`` (``acc`` unless ``long``)."""
    parts = [f"loss {row['train_loss']:.4f}", f"{'accuracy' if long else 'acc'} {100 * row['train_accuracy']:.2f} %"]
    parts += [f"{k.split('_')[0]} {100 * row[k]:.2f} %" for k in ("val_accuracy", "test_accuracy")
              if row[k] is not None]
    return parts


def duration(seconds):
    """``12.3 s``, ``4m05s``, ``2h07m``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m{int(seconds % 60):02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def check_engine(engine):
    """The engine name, ``DEFAULT_ENGINE`` for None; ConfigError for an unknown one."""
    engine = DEFAULT_ENGINE if engine is None else engine
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}. Received: engine={engine!r}")
    return engine


def program_for(models, data, batch_size, engine=DEFAULT_ENGINE, weight_decay=0.0, augment=False, form=None):
    """The ``Program`` of ``engine`` (the active backend's compiled one, or ``fit``), training
    with the loss ``models[0]`` was compiled with (``compiled_loss``), in program ``form``
    (for the compiled engine: else ``$SUPERMASK_ENGINE_FORM``, else the backend's choice)."""
    name = backend.name()
    if engine == "fit":
        module = fit
    elif name == "jax":
        from supermask.engine import jax as module  # lazy: JAX is an optional backend
    elif name == "tensorflow":
        from supermask.engine import tensorflow as module  # lazy: TensorFlow is an optional backend
    elif name == "torch":
        from supermask.engine import torch as module  # lazy: PyTorch is an optional backend
    else:
        raise ConfigError(f"No compiled engine for KERAS_BACKEND={name}; pass engine='fit'.")
    if engine != "fit":
        form = form or os.environ.get(FORM_VARIABLE) or None
    return module.Program(models, data, batch_size, loss=compiled_loss(models[0]), weight_decay=float(weight_decay),
                          augment=bool(augment), form=form)


def train_many(models, data, *, iterations, batch_size, seeds, eval_every=100, snapshot_iterations=(),
               start_iteration=0, verbose=1, engine=None, weight_decay=0.0, augment=False, form=None, labels=None,
               callbacks=None):
    """Train compiled ``models`` (one architecture) together; one ``TrainResult`` per model.

    Args:
        models: compiled Keras models (``supermask.train.compile_model``), each with its
            own weights and masks; the compiled engine needs them to share architecture,
            loss and optimiser settings (a lottery level's tickets and controls do). They
            train with the loss they were compiled with, or, compiled without one,
            ``SparseCategoricalCrossentropy(from_logits=True)`` (``program.compiled_loss``).
        data: a ``supermask.data.Dataset``.
        iterations: optimiser steps per model; batch_size: examples per step.
        seeds: one per model, fixing its order of mini-batches (``BatchStream``).
        eval_every: record metrics every this many iterations (and at the start and end).
        snapshot_iterations: iterations at which to copy every model's weights.
        start_iteration: the models are taken to be at this iteration (late rewinding)
            and train on the batches from here to ``iterations``.
        verbose: progress output (see ``Progress``); 0 is silent.
        engine: "compiled" (default) or "fit" (the reference: Keras ``fit`` per chunk).
        weight_decay: L2 penalty ``weight_decay / 2 * sum(w ** 2)`` over every trainable
            weight, added to the loss (PyTorch SGD's coupled ``weight_decay``).
        augment: random crop and flip of every training batch (``supermask.engine.augment``),
            its choices drawn per model from its seed; needs images (H, W, C).
        form: the compiled engine's program form (``FORMS`` of ``supermask.engine.<backend>``),
            else ``$SUPERMASK_ENGINE_FORM``, else the fastest for the platform and model. Every
            form gives the same results; it is a speed choice, not part of an experiment.
        labels: one name per model for the progress lines ("trial 0 ticket", "trial 0 control");
            default "network 0", "network 1", ... (none shown for one model).
        callbacks: Keras callbacks, called at the record points (``supermask.engine.callbacks``:
            the hooks, the logs, what a callback may read, how ``model.stop_training`` stops one
            model): a list (one model), a list of lists (one per model), or a function
            ``Network(label, name, index) -> list``. Without callbacks nothing is synced or
            copied: the results are the same either way.

    Raises ``TrainingError`` if a loss becomes NaN or infinite.
    """
    models, seeds = list(models), [int(s) for s in seeds]
    if len(models) != len(seeds) or not models:
        raise ConfigError(f"train_many needs one seed per model. Received {len(models)} models, {len(seeds)} seeds.")
    if not 0 <= start_iteration < iterations:
        raise ConfigError(f"start_iteration must be in [0, {iterations}). Received: {start_iteration}")
    if augment and len(data.input_shape) != 3:
        raise ConfigError(f"augment crops and flips images (H, W, C); this data has examples of shape "
                          f"{data.input_shape}. Turn --augment off.")
    labels = [f"network {k}" for k in range(len(models))] if labels is None else [str(x) for x in labels]
    if len(labels) != len(models):
        raise ConfigError(f"train_many needs one label per model. Received {len(models)} models, {len(labels)} labels.")
    networks = [Network(label, label.replace(" ", "_"), k, seed) for k, (label, seed) in enumerate(zip(labels, seeds))]
    callbacks = resolve(callbacks, networks)
    start = time.perf_counter()
    program = program_for(models, data, batch_size, check_engine(engine), weight_decay, augment, form)
    streams = [BatchStream(len(data.x_train), batch_size, s) for s in seeds]
    crops = [AugmentStream(batch_size, s) for s in seeds] if augment else []
    for stream in (*streams, *crops):
        stream.take(start_iteration)
    histories = [[] for _ in models]
    snapshots = [{} for _ in models]
    epoch_size = len(data.x_train)

    hooks = Hooks(models, callbacks, program.sync)

    def record(iteration, train=None):
        """Append each running model's row; returns {model index: row}."""
        evaluation = program.evaluate()
        for k in hooks.running():
            history = histories[k]
            row = {"iteration": iteration, "epoch": iteration * batch_size / epoch_size,
                   "train_loss": None if train is None else float(train[k, 0]),
                   "train_accuracy": None if train is None else float(train[k, 1])}
            for split in ("val", "test"):
                value = evaluation.get(split)
                row[f"{split}_loss"] = None if value is None else float(value[k, 0])
                row[f"{split}_accuracy"] = None if value is None else float(value[k, 1])
            row["seconds"] = time.perf_counter() - start
            history.append(row)
        return {k: histories[k][-1] for k in hooks.running()}

    def snapshot(iteration):
        program.sync()
        for k in hooks.running():
            snapshots[k][iteration] = get_weights(models[k])

    done, pending, steps = start_iteration, np.zeros((len(models), 2)), 0
    if done in snapshot_iterations:
        snapshot(done)
    hooks.begin(list(record(done).values()))
    progress = Progress(iterations, labels, verbose, start_iteration)
    for end in chunk_ends(done, iterations, eval_every, snapshot_iterations):
        indices = np.stack([stream.take(end - done) for stream in streams])
        if crops:  # (K, steps, batch, 4): example index, crop offsets, flip
            choices = np.stack([crop.take(end - done) for crop in crops])
            indices = np.concatenate([indices[..., None], choices], axis=-1)
        sums = program.train_chunk(indices)
        running = sums[hooks.running(), 0]  # a stopped model's steps are discarded, NaN or not
        if not np.all(np.isfinite(running)):
            bad = float(running[~np.isfinite(running)][0] / (end - done))
            raise TrainingError(
                f"The training loss became {bad} between iterations {done} and {end}. "
                "Lower the learning rate or check the data for NaNs."
            )
        pending, steps, done = pending + sums, steps + (end - done), end
        if done in snapshot_iterations:
            snapshot(done)
        if done % eval_every == 0 or done == iterations:
            rows = record(done, pending / steps)
            pending, steps = np.zeros_like(pending), 0
            progress.update(done, rows)
            hooks.record(rows)
            if hooks.all_stopped():
                break
    program.sync()
    hooks.end([h[-1] for h in histories])
    seconds = time.perf_counter() - start
    return [TrainResult(h, s, seconds) for h, s in zip(histories, snapshots)]
