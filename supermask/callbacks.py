"""Keras callbacks for your own ``fit``: gradual pruning on a schedule, and the recorders ``imp`` uses.

* ``GradualPruning(schedule, criterion=..., scope=..., ignore=...)``: prunes a masked model during
  ``model.fit`` (every backend) to the sparsity the schedule gives at each pruning step, with
  ``supermask.prune`` (so the same criteria and counts). The schedules are small serializable objects:
  ``PolynomialDecay`` (Zhu & Gupta 2017, "To prune, or not to prune", Eq. 1: "s_t = s_f + (s_i - s_f)
  (1 - (t - t_0) / (n Δt))^3 for t ∈ {t_0, t_0 + Δt, ..., t_0 + nΔt}"; ``power`` 3 is theirs, tfmot's
  ``PolynomialDecay`` the same rule) and ``ConstantSparsity`` (one target from ``begin_step``, kept).
  The step ``t`` is the optimiser's update count (``model.optimizer.iterations``), so a second ``fit``
  continues the schedule, as tfmot's ``UpdatePruningStep`` does with its own counter. ``logs`` at each
  epoch's end get ``sparsity`` (fraction of prunable weights pruned), so ``CSVLogger`` records it.
* ``Recorder(evaluate, every=None)``: evaluates at the start, every ``every`` steps (or at each
  epoch's end) and at the end, into ``history`` rows as the engine records them.
* ``WeightSnapshot(step)``: the weights after ``step`` optimiser updates (late rewinding).

With the JAX backend ``fit`` keeps the weights outside the model between callbacks; reading
``self.model`` synchronises them (Keras's ``Callback.model``), and weights or masks assigned in
``on_train_batch_begin`` are read back before the next step, so pruning in ``fit`` is exact there too.
"""

import numbers
import time

import keras
import numpy as np

from supermask import convert, tickets
from supermask.errors import ConfigError


def optimizer_step(model):
    """The optimiser's update count of ``model`` (0 when it has no optimizer)."""
    optimizer = getattr(model, "optimizer", None)
    return int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else 0


def _fraction(value, name, upper=1.0):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < upper:
        raise ConfigError(f"{name} must be a number in [0, {upper:g}). Received: {name}={value!r}")
    return float(value)


def _steps(value, name, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


@keras.saving.register_keras_serializable(package="supermask")
class PolynomialDecay:
    """Sparsity from ``initial_sparsity`` at ``begin_step`` to ``final_sparsity`` at ``end_step``,
    ``s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power``, applied every
    ``frequency`` steps from ``begin_step`` (and at ``end_step``); no pruning outside [begin, end]."""

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100):
        self.initial_sparsity = _fraction(initial_sparsity, "initial_sparsity")
        self.final_sparsity = _fraction(final_sparsity, "final_sparsity")
        if self.final_sparsity < self.initial_sparsity:
            raise ConfigError("final_sparsity must be >= initial_sparsity: pruning never revives weights. Received: "
                              f"initial_sparsity={initial_sparsity}, final_sparsity={final_sparsity}")
        self.begin_step = _steps(begin_step, "begin_step")
        self.end_step = _steps(end_step, "end_step", self.begin_step + 1)
        if isinstance(power, bool) or not isinstance(power, numbers.Real) or not power > 0:
            raise ConfigError(f"power must be a number > 0. Received: power={power!r}")
        self.power = float(power)
        self.frequency = _steps(frequency, "frequency", 1)

    def __call__(self, step):
        """The sparsity to prune to before optimiser step ``step``, or None (no pruning then)."""
        if step != self.pruning_step(step) or step > self.end_step:
            return None
        progress = (step - self.begin_step) / (self.end_step - self.begin_step)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1 - progress) ** self.power

    def pruning_step(self, step):
        """The last pruning step at or before ``step`` (None before ``begin_step``): where a callback that
        sees only every n-th step (``steps_per_execution``) catches up."""
        if step < self.begin_step:
            return None
        if step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency

    def get_config(self):
        return {"initial_sparsity": self.initial_sparsity, "final_sparsity": self.final_sparsity,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power,
                "frequency": self.frequency}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="supermask")
class ConstantSparsity:
    """``target_sparsity`` from ``begin_step`` on, re-applied every ``frequency`` steps until
    ``end_step`` (-1: for ever); pruned weights stay pruned, so re-applying only holds the target."""

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        self.target_sparsity = _fraction(target_sparsity, "target_sparsity")
        self.begin_step = _steps(begin_step, "begin_step")
        self.end_step = -1 if end_step == -1 else _steps(end_step, "end_step", self.begin_step)
        self.frequency = _steps(frequency, "frequency", 1)

    def __call__(self, step):
        """The sparsity to prune to before optimiser step ``step``, or None (no pruning then)."""
        if (self.end_step != -1 and step > self.end_step) or step != self.pruning_step(step):
            return None
        return self.target_sparsity

    def pruning_step(self, step):
        """The last pruning step at or before ``step`` (None before ``begin_step``)."""
        if step < self.begin_step:
            return None
        last = step if self.end_step == -1 else min(step, self.end_step)
        return self.begin_step + (last - self.begin_step) // self.frequency * self.frequency

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step, "end_step": self.end_step,
                "frequency": self.frequency}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class GradualPruning(keras.callbacks.Callback):
    """Prune the model being fitted to ``schedule(step)`` at every step the schedule names.

    The model must hold masked layers before it is compiled (``model = supermask.masked(model)``),
    since ``fit`` compiles its step around the layers it has. ``criterion``, ``scope``, ``ignore``,
    ``reference`` and ``seed`` are ``supermask.prune``'s. ``pruned_at``: ``[(step, sparsity)]`` done.
    """

    def __init__(self, schedule, criterion="large_final", scope="layerwise", ignore=(), reference=None, seed=0):
        super().__init__()
        if not callable(schedule):
            raise ConfigError("schedule must be a PolynomialDecay, a ConstantSparsity or a function step -> sparsity "
                              f"(or None). Received: {type(schedule).__name__}")
        self.schedule, self.criterion, self.scope = schedule, criterion, scope
        self.ignore, self.reference, self.seed = tuple([ignore] if isinstance(ignore, str) else ignore), reference, seed
        self.pruned_at = []

    def on_train_begin(self, logs=None):
        model = self.model
        if not any(hasattr(layer, "set_mask") for layer in convert.prunable_layers(model).values()):
            raise ConfigError(f"GradualPruning needs a model with masked layers; '{model.name}' has none. Call "
                              "model = supermask.masked(model) before model.compile(...).")

    def on_train_batch_begin(self, batch, logs=None):
        model = self.model  # on JAX this synchronises the weights into the model's variables
        step = optimizer_step(model)
        # The schedule's last pruning step up to now: fit may call back every n-th step only
        # (steps_per_execution), or start mid-schedule; a plain function prunes at its own steps.
        due = self.schedule.pruning_step(step) if hasattr(self.schedule, "pruning_step") else step
        if due is None or (self.pruned_at and self.pruned_at[-1][0] == due):
            return
        target = self.schedule(due)
        if target is None:
            return
        step = due
        tickets.prune(model, sparsity=target, criterion=self.criterion, scope=self.scope, ignore=self.ignore,
                      reference=self.reference, seed=self.seed + step)
        self.pruned_at.append((step, float(target)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sparsity"] = 1.0 - tickets.sparsity(self.model).density


class Recorder(keras.callbacks.Callback):
    """Evaluates ``evaluate(model) -> {val_loss, val_accuracy, test_loss, test_accuracy}`` at the start,
    every ``every`` optimiser steps (None: at each epoch's end) and at the end of training, into
    ``history`` (rows as ``engine.TrainResult.history``: iteration, epoch, train_loss, train_accuracy,
    the four evaluations, seconds). ``iteration`` counts this network's optimiser steps."""

    def __init__(self, evaluate, every=None):
        super().__init__()
        self.evaluate, self.every = evaluate, every
        self.history, self.steps, self.epoch = [], 0, 0
        self._start, self._train = None, []

    def record(self, model, final=False):
        if final and self.history and self.history[-1]["iteration"] == self.steps:
            return
        losses = [v for v in self._train if v[0] is not None]
        row = {"iteration": self.steps, "epoch": self.epoch,
               "train_loss": float(np.mean([v[0] for v in losses])) if losses else None,
               "train_accuracy": (float(np.mean([v[1] for v in losses])) if losses and losses[0][1] is not None
                                  else None),
               **self.evaluate(model), "seconds": time.perf_counter() - (self._start or time.perf_counter())}
        self._train = []
        self.history.append(row)

    def on_train_begin(self, logs=None):
        if self._start is None:
            self._start = time.perf_counter()
        if not self.history:
            self.record(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        logs = logs or {}
        accuracy = next((logs[k] for k in ("accuracy", "sparse_categorical_accuracy", "acc") if k in logs), None)
        loss = logs.get("loss")
        self._train.append((None if loss is None else float(loss), None if accuracy is None else float(accuracy)))
        if self.every and self.steps % self.every == 0:
            self.record(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        if not self.every:
            self.record(self.model)

    def on_train_end(self, logs=None):
        self.record(self.model, final=True)


class WeightSnapshot(keras.callbacks.Callback):
    """``weights``: every weight but the masks after ``step`` optimiser steps of this training
    (``supermask.snapshot``); None until then. ``step=0``: before the first."""

    def __init__(self, step):
        super().__init__()
        self.step, self.steps, self.weights = _steps(step, "step"), 0, None

    def on_train_begin(self, logs=None):
        if self.step == 0 and self.weights is None:
            self.weights = tickets.snapshot(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.step:
            self.weights = tickets.snapshot(self.model)
