"""The interface between the driver and a backend program, and what every backend shares.

Keras splits its trainer the same way: ``keras/src/trainers/trainer.py`` holds the
backend-free ``Trainer`` and ``keras/src/backend/<name>/trainer.py`` one backend's
compiled step. Here ``supermask.engine.driver`` is the backend-free part (schedule,
history, checks) and a ``Program`` subclass (``supermask.engine.<backend>.Program``,
``supermask.engine.fit.Program``) the compiled inside of a chunk and of an evaluation.
A backend module imports this module, never the driver.
"""

import abc
import math

import keras
import numpy as np

from supermask.errors import ConfigError

EVAL_BATCH_SIZE = 1000  # examples per evaluation batch, on every engine
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")  # all three: the batch mean


class Program(abc.ABC):
    """Train and evaluate K models of one architecture; built once per ``train_many`` run.

    Args:
        models: K >= 1 compiled Keras models (``supermask.train.compile_model``), each with
            its own weights, masks and optimiser state in its Keras variables. A compiled
            program needs them to share one program (``check_same_program``).
        data: a ``supermask.data.Dataset`` of numpy arrays: ``x_train`` (N, *input_shape)
            float32 and ``y_train`` (N,) integer class ids, likewise ``x_val`` / ``y_val``
            and ``x_test`` / ``y_test`` (either may be empty). The program places what it
            needs on its device once, in ``__init__``; the driver passes only indices later.
        batch_size: B, examples per training step.
        loss: a ``keras.losses.Loss`` (``compiled_loss``): ``loss(y, logits)`` is the mean
            over the batch, ``loss.call`` the per-example values (``per_example_loss``).
        weight_decay: coupled L2, ``weight_decay / 2 * sum(w ** 2)`` over every trainable
            variable, added to the training loss (not to the evaluation loss).
        augment: whether the training batches are cropped and flipped
            (``supermask.engine.augment``; then ``train_chunk`` gets the choices too).
        form: the program form to run (each backend's ``FORMS``), or None to let the
            backend choose the fastest for the platform and model (``choose_form``);
            every form gives the same results. The form run is ``self.form``.

    The training loss of a step is ``loss(y, logits)`` plus the model's layer losses
    (``model.losses``, e.g. L2 on supermask scores) plus the weight decay; its accuracy is
    the fraction of the batch whose argmax logit is the label.
    """

    FORMS = ("default",)

    def __init__(self, models, data, batch_size, *, loss, weight_decay=0.0, augment=False, form=None):
        self.models, self.data, self.batch_size = list(models), data, int(batch_size)
        self.loss, self.weight_decay, self.augment = loss, float(weight_decay), bool(augment)
        self.form = choose_form(self.FORMS, self.default_form(), form)

    def default_form(self):
        """The form this backend runs on this platform for these models when none is asked for."""
        return self.FORMS[0]

    @abc.abstractmethod
    def train_chunk(self, indices):
        """Run one chunk of S steps for every model; returns its sums.

        Args:
            indices: int32 array (K, S, B): model k's step s trains on the examples
                ``x_train[indices[k, s]]``. With ``augment``, (K, S, B, 4): the example
                index, then the crop offsets dy, dx and the flip bit (``AugmentStream``).

        Returns:
            float64 array (K, 2): per model, the sums over the S steps of the step's
            training loss and of its accuracy (a fraction in [0, 1]).
        """

    @abc.abstractmethod
    def evaluate(self):
        """``{split: float64 array (K, 2)}`` for each non-empty split of "val" and "test".

        Per model, the mean over the split's examples of ``per_example_loss`` plus the
        layer losses (the loss Keras's ``evaluate`` reports), and the fraction of examples
        whose argmax logit is the label; with the models in inference mode
        (``training=False``), in batches of ``EVAL_BATCH_SIZE``.
        """

    def sync(self):
        """Write the program's state into the models' Keras variables, if it keeps its own."""


def default_loss():
    """``SparseCategoricalCrossentropy(from_logits=True)``: integer labels, models emitting logits."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compiled_loss(model):
    """The loss ``model`` was compiled with, as a ``keras.losses.Loss``.

    ``default_loss()`` if it was compiled without one; a name is resolved with
    ``keras.losses.get`` and a function wrapped, as ``model.compile`` does. ConfigError
    for several losses (one per output) or a reduction other than a batch mean, as the
    engines sum per-example losses themselves.
    """
    loss = getattr(model, "loss", None)
    if loss is None:
        return default_loss()
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if not isinstance(loss, keras.losses.Loss) and callable(loss):
        loss = FunctionLoss(loss)
    if not isinstance(loss, keras.losses.Loss):
        raise ConfigError(f"The engines train with one loss on one output. Received: loss={loss!r}")
    if loss.reduction not in _MEAN_REDUCTIONS:
        raise ConfigError(f"The engines need a loss that averages over the batch (reduction in "
                          f"{_MEAN_REDUCTIONS}). Received: reduction={loss.reduction!r}")
    return loss


class FunctionLoss(keras.losses.Loss):
    """A loss function ``fn(y_true, y_pred) -> (B,)`` as a ``keras.losses.Loss`` (mean over the batch)."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", None))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def get_config(self):
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return {**super().get_config(), "fn": f"{getattr(self.fn, '__module__', '')}.{name}"}


def per_example_loss(loss, y, logits):
    """``loss``'s unreduced values (B,) for labels ``y`` (B,) and ``logits`` (B, classes): its
    ``call`` on both cast to the loss's dtype, as ``Loss.__call__`` does before reducing."""
    return loss.call(keras.ops.convert_to_tensor(y, dtype=loss.dtype),
                     keras.ops.convert_to_tensor(logits, dtype=loss.dtype))


def loss_signature(loss):
    """A string that is equal for two losses that compute the same: class and config, less the name.

    A ``keras.losses.Loss`` subclass with options must list them in ``get_config`` (Keras
    needs that to save it too), or two of its instances cannot be told apart.
    """
    return repr((type(loss).__module__, type(loss).__qualname__, strip_config(loss.get_config())))


def padded_batches(x, y, batch_size=EVAL_BATCH_SIZE):
    """``(x, y, weight)`` reshaped to ``(batches, batch_size, ...)``, zero-padded at the end.

    ``weight`` is 1.0 for real examples and 0.0 for padding, so sums over a split are
    exact whatever its size; every batch has one shape, so one program serves all.
    """
    n = len(x)
    batches = max(1, math.ceil(n / batch_size))
    pad = batches * batch_size - n
    weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    return (x.reshape(batches, batch_size, *x.shape[1:]), y.reshape(batches, batch_size),
            weight.reshape(batches, batch_size))


def eval_splits(data):
    """``{split: (x, y, weight) batches}`` (``padded_batches``) of the non-empty "val" and "test" splits."""
    return {split: padded_batches(getattr(data, f"x_{split}"), getattr(data, f"y_{split}"))
            for split in ("val", "test") if len(getattr(data, f"x_{split}"))}


def program_signature(model):
    """What a compiled program depends on: layers and their options, variable shapes and
    dtypes, the compiled loss, the optimiser and its settings (not names, seeds or
    initialisers), as a string."""
    layers = [(type(layer).__name__, strip_config(layer.get_config())) for layer in model.layers]
    variables = [(tuple(v.shape), str(v.dtype)) for v in model.variables]
    optimizer = model.optimizer
    return repr((layers, variables, loss_signature(compiled_loss(model)), type(optimizer).__name__,
                 strip_config(optimizer.get_config())))


def check_same_program(models):
    """ConfigError unless ``models`` can share one compiled program (same layers, options,
    variable shapes, loss and optimiser settings; names and seeds may differ). Returns
    their ``program_signature``."""
    first = program_signature(models[0])
    for k, model in enumerate(models[1:], start=1):
        if program_signature(model) != first:
            raise ConfigError(f"Model {k} differs from model 0 (layers, shapes, loss or optimiser): the compiled "
                              "engine trains several models together only when they share one program. "
                              "Train them separately, or pass engine='fit'.")
    return first


def strip_config(config):
    """A config without the entries that may differ between models of one program."""
    if isinstance(config, dict):
        return {k: strip_config(v) for k, v in config.items()
                if k not in ("name", "seed") and not k.endswith("initializer")}
    if isinstance(config, (list, tuple)):
        return [strip_config(v) for v in config]
    return config


FORM_VARIABLE = "SUPERMASK_ENGINE_FORM"  # overrides a backend's choice of program form


def has_convolutions(model):
    """Whether ``model`` has a convolution: a trainable variable of rank 3 or more (a Conv1D/2D/3D
    kernel, masked or not). The engines choose their program form by it (see ``choose_form``)."""
    return any(len(v.shape) >= 3 for v in model.trainable_variables)


def choose_form(forms, default, requested=None):
    """The program form to run: ``requested``, else ``default``; ConfigError naming the valid
    ``forms`` for any other value. The driver passes ``$SUPERMASK_ENGINE_FORM`` as ``requested``
    to the compiled engine when the caller names no form."""
    form = requested or default
    if form not in forms:
        raise ConfigError(f"Unknown engine form {form!r} for KERAS_BACKEND={keras.backend.backend()}: valid forms "
                          f"are {', '.join(forms)} (set by {FORM_VARIABLE} or form=; unset it to let the engine "
                          f"choose).")
    return form
