"""The compiled JAX program: K models as one ``vmap``ped ``lax.scan`` over their steps.

Each model's state is its Keras stateless variables: trainable (kernels, biases,
supermask scores), non-trainable (masks, seed-generator states) and the optimiser's.
The K states are stacked along a leading axis and one jitted function runs a whole
chunk: for every step, gather the batch from the training split (placed on the device
once), ``model.stateless_call``, the program's loss (plus any layer losses), the
gradient and ``optimizer.stateless_apply``; it returns the sums of the step losses and
accuracies. A second jitted function evaluates all K on the validation and test splits
(batches of ``EVAL_BATCH_SIZE``, zero-padded, on the device), ``vmap``ped over as many
models at a time as ``eval_group`` allows (64 conv tickets at once would need tens of GiB
of activations). K = 1 runs without ``vmap``.

The jitted functions only need the models' structure (``stateless_call`` takes the
variables as arguments), so they are kept for the next ``Program`` of the same
architecture, loss, K, dataset and batch size: the levels of a lottery experiment compile
once.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from supermask.engine import program
from supermask.engine.augment import augment as augment_batch

_CACHE = {}  # (signature, loss, K, batch, decay, augment) -> (dataset, compiled functions); the last few only
_CACHE_SIZE = 4
EVAL_MEMORY_BYTES = 2 * 2**30  # activations of the models evaluated at once


def training_kwargs(model, training):
    """``{"training": training}`` if ``model.call`` takes it, else ``{}``: ``stateless_call`` calls
    ``call`` directly, so (as Keras's own JAX trainer does) the flag goes only to a ``call``
    that declares ``training`` or ``**kwargs``; a subclassed model's ``call(self, x)`` works too."""
    parameters = inspect.signature(model.call).parameters.values()
    takes = any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in parameters)
    return {"training": training} if takes else {}


def _stack(values):
    return jnp.stack([jnp.asarray(v) for v in values])


class Program(program.Program):
    """Train and evaluate ``models`` (compiled, one architecture) as one JAX program."""

    def __init__(self, models, data, batch_size, *, loss, weight_decay=0.0, augment=False):
        super().__init__(models, data, batch_size, loss=loss, weight_decay=weight_decay, augment=augment)
        signature = program.check_same_program(self.models)
        for m in self.models:
            if not m.optimizer.built:
                m.optimizer.build(m.trainable_variables)
        per_model = [([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                      [v.value for v in m.optimizer.variables]) for m in self.models]
        self.state = jax.tree_util.tree_map(lambda *xs: _stack(xs), *per_model)
        count = len(self.models)
        key = (signature, program.loss_signature(loss), count, self.batch_size, self.weight_decay, self.augment)
        cached = _CACHE.get(key)
        if cached is None or cached[0] is not data:
            _CACHE.pop(key, None)
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = (data, _compile(self.models[0], data, count, loss, self.weight_decay, self.augment))
        self.splits, self._chunk, self._evaluate = _CACHE[key][1]

    def train_chunk(self, indices):
        self.state, sums = self._chunk(self.state, jnp.asarray(indices))
        return np.asarray(sums, dtype=np.float64)

    def evaluate(self):
        out = {}
        for split, (x, y, w) in self.splits.items():
            self.state, means = self._evaluate(self.state, x, y, w)
            out[split] = np.asarray(means, dtype=np.float64)
        return out

    def sync(self):
        """Write the K states back into the models' Keras variables."""
        trainable, non_trainable, opt_vars = jax.tree_util.tree_map(np.asarray, self.state)
        for k, m in enumerate(self.models):
            for variables, values in ((m.trainable_variables, trainable), (m.non_trainable_variables, non_trainable),
                                      (m.optimizer.variables, opt_vars)):
                for variable, value in zip(variables, values):
                    variable.assign(value[k])


def _compile(model, data, count, loss_fn, weight_decay, augment):
    """``(eval splits on the device, jitted chunk, jitted evaluation)`` for ``count`` models
    shaped like ``model`` (any model of that architecture may lend its structure)."""
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    splits = {k: tuple(jnp.asarray(a) for a in v) for k, v in program.eval_splits(data).items()}
    optimizer = model.optimizer

    def step(state, idx):
        trainable, non_trainable, opt_vars = state
        if augment:
            idx, choices = idx[:, 0], idx[:, 1:]
            x = augment_batch(x_train[idx], choices)
        else:
            x = x_train[idx]
        y = y_train[idx]

        def loss_of(trainable):
            logits, non_trainable_new, losses = model.stateless_call(
                trainable, non_trainable, x, return_losses=True, **training_kwargs(model, True))
            loss = loss_fn(y, logits)
            if losses:
                loss = loss + sum(losses)
            if weight_decay:
                loss = loss + 0.5 * weight_decay * sum(jnp.sum(jnp.square(v)) for v in trainable)
            return loss, (logits, non_trainable_new)

        (loss, (logits, non_trainable)), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == y)
        return (trainable, non_trainable, opt_vars), (loss, accuracy)

    def chunk(state, indices):
        state, (losses, accuracies) = jax.lax.scan(step, state, indices)
        return state, jnp.stack([losses.sum(), accuracies.sum()])

    def evaluate(state, x, y, w):
        trainable, non_trainable, _ = state

        def batch(non_trainable, xyw):
            xb, yb, wb = xyw
            logits, non_trainable, losses = model.stateless_call(trainable, non_trainable, xb, return_losses=True,
                                                                 **training_kwargs(model, False))
            # The loss Keras reports adds the layer losses (e.g. L2 on scores) to every batch.
            nll = program.per_example_loss(loss_fn, yb, logits)
            nll = nll + sum(losses) if losses else nll
            correct = (jnp.argmax(logits, axis=-1) == yb).astype("float32")
            return non_trainable, jnp.stack([jnp.sum(nll * wb), jnp.sum(correct * wb)])

        non_trainable, sums = jax.lax.scan(batch, non_trainable, (x, y, w))
        return (state[0], non_trainable, state[2]), sums.sum(axis=0) / jnp.sum(w)

    if count == 1:  # no vmap: the plain program, state squeezed around it
        def squeezed(fn):
            def run(state, *args):
                state, out = fn(jax.tree_util.tree_map(lambda a: a[0], state), *args)
                return jax.tree_util.tree_map(lambda a: a[None], state), out[None]
            return run

        return (splits, jax.jit(lambda state, idx: squeezed(chunk)(state, idx[0]), donate_argnums=0),
                jax.jit(squeezed(evaluate), donate_argnums=0))
    group = eval_group(model, count)

    def evaluate_all(state, x, y, w):  # `group` models at a time, vmapped within a group
        return jax.lax.map(lambda s: evaluate(s, x, y, w), state, batch_size=group)

    return splits, jax.jit(jax.vmap(chunk), donate_argnums=0), jax.jit(evaluate_all, donate_argnums=0)


def eval_group(model, count):
    """How many of ``count`` models to evaluate at once: all, unless their activations for one
    evaluation batch (the sum of the layers' output sizes, float32) would pass
    ``EVAL_MEMORY_BYTES``; a conv net of 64 tickets would otherwise ask for tens of GiB."""
    try:
        per_example = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers)
    except (AttributeError, ValueError, TypeError):  # outputs unknown: one model at a time
        return 1
    per_model = 4 * per_example * program.EVAL_BATCH_SIZE
    return int(max(1, min(count, EVAL_MEMORY_BYTES // max(per_model, 1))))
