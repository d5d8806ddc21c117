"""The compiled TensorFlow program: one graph loop over a chunk's steps per model.

TensorFlow keeps each model's state in its own ``tf.Variable``s, so a chunk is a
``tf.function`` whose ``tf.while_loop`` runs every step (gather the batch from the
training split placed on the device once, forward, the program's loss plus layer losses,
gradient, ``optimizer.apply``) and returns the sums of the step losses and accuracies;
the evaluation is a second graph loop over batches of ``EVAL_BATCH_SIZE``. The
seed-generator state of supermask layers is a variable too, so masks are fresh every
step. K models run one after the other (the state of each lives in its own variables).

Two forms: ``xla`` compiles both loops with XLA (``jit_compile=True``), ``graph`` runs them
as plain TensorFlow graphs. XLA:CPU leaves the convolutions inside a loop body on a naive
path (14.3 s for a conv2 step at batch 60 on a 2-core CPU, against 0.11 s with TensorFlow's
own oneDNN kernels), so ``default_form`` runs conv nets on a CPU as ``graph`` and everything
else (dense nets, any net on a GPU) as ``xla``, which fuses a dense step's small operations.
``$SUPERMASK_ENGINE_FORM`` (or ``train_many(form=...)``) picks the other.
"""

import logging

import numpy as np
import tensorflow as tf

from supermask.engine import program
from supermask.engine.augment import augment as augment_batch


class _ExpectedRetracing(logging.Filter):
    """Drop TensorFlow's "triggered tf.function retracing" warning: this engine compiles one
    chunk and one evaluation function per model on purpose (they hold its variables), so
    every level of a lottery traces them anew, and the warning would only fill the logs."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_ExpectedRetracing())


def default_form(model, device):
    """``graph`` for a conv net on a CPU (oneDNN's convolutions beat XLA:CPU's inside a loop by
    two orders of magnitude), ``xla`` otherwise (see the module docstring)."""
    return "graph" if device == "CPU" and program.has_convolutions(model) else "xla"


class _Single:
    """The compiled chunk and evaluation of one model."""

    def __init__(self, model, x_train, y_train, splits, loss_fn, weight_decay, augment, form):
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.splits = splits
        variables, optimizer = model.trainable_variables, model.optimizer

        def step(idx):
            if augment:
                idx, choices = idx[:, 0], idx[:, 1:]
                x = augment_batch(tf.gather(x_train, idx), choices)
            else:
                x = tf.gather(x_train, idx)
            y = tf.gather(y_train, idx)
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
                if weight_decay:
                    loss = loss + 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])
            optimizer.apply(tape.gradient(loss, variables), variables)
            correct = tf.equal(tf.argmax(logits, axis=-1, output_type=y.dtype), y)
            return loss, tf.reduce_mean(tf.cast(correct, tf.float32))

        xla = form == "xla"

        def chunk_loop(indices):
            def body(i, loss_sum, accuracy_sum):
                loss, accuracy = step(indices[i])
                return i + 1, loss_sum + loss, accuracy_sum + accuracy

            _, loss_sum, accuracy_sum = tf.while_loop(
                lambda i, *_: i < tf.shape(indices)[0], body, (tf.constant(0), tf.constant(0.0), tf.constant(0.0)))
            return tf.stack([loss_sum, accuracy_sum])

        def eval_batch(xb, yb, wb):
            logits = model(xb, training=False)
            nll = program.per_example_loss(loss_fn, yb, logits)
            if model.losses:  # Keras's reported loss adds the layer losses to every batch
                nll = nll + tf.add_n(model.losses)
            correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=yb.dtype), yb), tf.float32)
            return tf.stack([tf.reduce_sum(nll * wb), tf.reduce_sum(correct * wb)])

        def evaluate_loop(x, y, w):
            def body(i, sums):
                return i + 1, sums + eval_batch(x[i], y[i], w[i])

            _, sums = tf.while_loop(lambda i, _: i < tf.shape(x)[0], body, (tf.constant(0), tf.zeros(2)))
            return sums / tf.reduce_sum(w)

        chunk = tf.function(chunk_loop, jit_compile=xla, reduce_retracing=True)
        evaluate = tf.function(evaluate_loop, jit_compile=xla, reduce_retracing=True)
        self.chunk, self.evaluate = chunk, evaluate


class Program(program.Program):
    """Train and evaluate ``models`` with compiled TensorFlow loops, one model at a time."""

    FORMS = ("xla", "graph")

    def default_form(self):
        return default_form(self.models[0], "GPU" if tf.config.list_logical_devices("GPU") else "CPU")

    def __init__(self, models, data, batch_size, *, loss, weight_decay=0.0, augment=False, form=None):
        super().__init__(models, data, batch_size, loss=loss, weight_decay=weight_decay, augment=augment,
                         form=form)
        program.check_same_program(self.models)
        x_train, y_train = tf.constant(data.x_train), tf.constant(data.y_train)
        splits = {k: tuple(tf.constant(a) for a in v) for k, v in program.eval_splits(data).items()}
        self.singles = [_Single(m, x_train, y_train, splits, loss, self.weight_decay, self.augment, self.form)
                        for m in self.models]

    def train_chunk(self, indices):
        return np.stack([np.asarray(s.chunk(tf.constant(idx)), dtype=np.float64)
                         for s, idx in zip(self.singles, indices)])

    def evaluate(self):
        return {split: np.stack([np.asarray(s.evaluate(*s.splits[split]), dtype=np.float64) for s in self.singles])
                for split in self.singles[0].splits}
