"""The compiled JAX program: K models' steps as jitted XLA computations, in the form that is
fastest for the platform and the model.

Each model's state is its Keras stateless variables: trainable (kernels, biases,
supermask scores), non-trainable (masks, BatchNormalization statistics, seed-generator
states) and the optimiser's. A step gathers the batch from the training split (placed on
the device once), runs ``model.stateless_call``, the program's loss (plus any layer
losses and weight decay), the gradient and ``optimizer.stateless_apply``, and adds the
step's loss and accuracy to running sums. The evaluation runs the models in inference
mode over the validation and test splits (batches of ``EVAL_BATCH_SIZE``, zero-padded, on
the device). Two choices make a form, written ``<steps>-<models>``:

* steps: ``scan``, a whole chunk as one jitted ``lax.scan`` over its steps (and one
  ``lax.scan`` over the evaluation batches), or ``loop``, a Python loop calling one
  jitted step (one jitted evaluation batch) with the state donated, so it is updated in
  place. ``scan`` saves the per-call dispatch (~0.1 ms, most of a small dense step);
  ``loop`` keeps every convolution at the top level of its computation, where XLA:CPU
  gives it its fast layout. Inside a loop body XLA:CPU leaves the backward convolutions
  on a naive path (measured on a 2-core CPU: one conv layer's forward and backward 89 ms
  as a plain jitted call, 5.9 s in a ``scan``), so on a CPU a conv net's step is
  faster in ``loop`` form (13× resnet20, 49× conv2; ``benchmarks/speed.py``).
* models: ``vmap``, the K states stacked on a leading axis and one ``vmap``ped program
  (evaluated ``eval_group`` models at a time: 64 conv tickets at once would need tens
  of GiB of activations), or ``each``, one program per model, run one model after the
  other, so each model computes exactly what it computes alone. ``vmap`` turns every
  convolution into a grouped one: slow on a CPU, and on an H200 conv2 at K = 64 gave
  1.74 ticket-epochs/s against 2.38 for K = 1; for dense nets it is the gain of running
  K tickets at once.

``default_form``: ``scan-vmap`` for nets without convolutions on every platform, ``loop-each``
for conv nets on a CPU, ``scan-each`` for conv nets elsewhere. ``$SUPERMASK_ENGINE_FORM``
(or ``train_many(form=...)``) picks another; every form gives the same results, up to the
last bits of float rounding where XLA fuses differently.

The jitted functions only need the models' structure (``stateless_call`` takes the
variables as arguments), so they are kept for the next ``Program`` of the same
architecture, loss, number of models per program, dataset, batch size and form: the
levels of a lottery experiment compile once, and in ``each`` form K models share one
compilation.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from supermask.engine import program
from supermask.engine.augment import augment as augment_batch

_CACHE = {}  # (signature, loss, models per program, batch, decay, augment, form) -> (dataset, functions)
_CACHE_SIZE = 4
EVAL_MEMORY_BYTES = 2 * 2**30  # activations of the models evaluated at once
FORMS = ("scan-vmap", "scan-each", "loop-vmap", "loop-each")


def training_kwargs(model, training):
    """``{"training": training}`` if ``model.call`` takes it, else ``{}``: ``stateless_call`` calls
    ``call`` directly, so (as Keras's own JAX trainer does) the flag goes only to a ``call``
    that declares ``training`` or ``**kwargs``; a subclassed model's ``call(self, x)`` works too."""
    parameters = inspect.signature(model.call).parameters.values()
    takes = any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in parameters)
    return {"training": training} if takes else {}


def default_form(model, platform):
    """The fastest form measured for ``model`` on ``platform`` ("cpu", "gpu", "tpu"); see the
    module docstring."""
    if not program.has_convolutions(model):
        return "scan-vmap"
    return "loop-each" if platform == "cpu" else "scan-each"


class Program(program.Program):
    """Train and evaluate ``models`` (compiled, one architecture) as jitted JAX programs."""

    FORMS = FORMS

    def default_form(self):
        return default_form(self.models[0], jax.default_backend())

    def __init__(self, models, data, batch_size, *, loss, weight_decay=0.0, augment=False, form=None):
        super().__init__(models, data, batch_size, loss=loss, weight_decay=weight_decay, augment=augment,
                         form=form)
        signature = program.check_same_program(self.models)
        for m in self.models:
            if not m.optimizer.built:
                m.optimizer.build(m.trainable_variables)
        per_model = [([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                      [v.value for v in m.optimizer.variables]) for m in self.models]
        steps, layout = self.form.split("-")
        self.stacked = layout == "vmap" and len(self.models) > 1
        if self.stacked:  # one state, each array with a leading axis of K
            self.states = [jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *per_model)]
        else:
            # Copies: the state is donated to the programs, and the models' own buffers must outlive them.
            self.states = [jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), state) for state in per_model]
        count = len(self.models) if self.stacked else 1
        key = (signature, program.loss_signature(loss), count, self.batch_size, self.weight_decay, self.augment,
               steps)
        cached = _CACHE.get(key)
        if cached is None or cached[0] is not data:
            _CACHE.pop(key, None)
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = (data, _compile(self.models[0], data, count, loss, self.weight_decay, self.augment, steps))
        self.splits, self.train_data, self._chunk, self._evaluate = _CACHE[key][1]

    def train_chunk(self, indices):
        indices = np.asarray(indices)
        if self.stacked:
            self.states[0], sums = self._chunk(self.states[0], indices, self.train_data)
            return np.asarray(sums, dtype=np.float64)
        out = []
        for k, state in enumerate(self.states):  # one model after the other: each as if alone
            self.states[k], sums = self._chunk(state, indices[k], self.train_data)
            out.append(sums)
        return np.stack([np.asarray(s, dtype=np.float64) for s in out])

    def evaluate(self):
        out = {}
        for split, batches in self.splits.items():
            means = []
            for k, state in enumerate(self.states):
                self.states[k], value = self._evaluate(state, *batches)
                means.append(value)
            out[split] = np.concatenate([np.asarray(m, dtype=np.float64).reshape(-1, 2) for m in means])
        return out

    def sync(self):
        """Write the models' states back into their Keras variables."""
        if self.stacked:
            stacked = jax.tree_util.tree_map(np.asarray, self.states[0])
            states = [jax.tree_util.tree_map(lambda a, k=k: a[k], stacked) for k in range(len(self.models))]
        else:
            states = [jax.tree_util.tree_map(np.asarray, s) for s in self.states]
        for m, (trainable, non_trainable, opt_vars) in zip(self.models, states):
            for variables, values in ((m.trainable_variables, trainable), (m.non_trainable_variables, non_trainable),
                                      (m.optimizer.variables, opt_vars)):
                for variable, value in zip(variables, values):
                    variable.assign(value)


def _compile(model, data, count, loss_fn, weight_decay, augment, steps):
    """``(eval splits on the device, training split on the device, chunk, evaluation)`` for
    ``count`` models shaped like ``model`` (any model of that architecture may lend its
    structure): ``chunk(state, indices, (x_train, y_train)) -> (state, sums)`` and
    ``evaluate(state, x, y, w) -> (state, means)``, with a leading axis of ``count`` on the
    state, indices and results when ``count > 1``. The data are arguments, not constants
    closed over: XLA would fold a constant training split into the program (conv2 on
    CIFAR-shaped data compiled in 11 s that way, against 1 s)."""
    train_data = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    splits = {k: tuple(jnp.asarray(a) for a in v) for k, v in program.eval_splits(data).items()}
    optimizer = model.optimizer

    def step(state, idx, train_data):
        """One training step of one model: ``(state, (loss, accuracy))``."""
        x_train, y_train = train_data
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

    def eval_batch(state, xb, yb, wb):
        """One evaluation batch of one model: ``(state, [weighted loss sum, correct count])``."""
        trainable, non_trainable, opt_vars = state
        logits, non_trainable, losses = model.stateless_call(trainable, non_trainable, xb, return_losses=True,
                                                             **training_kwargs(model, False))
        # The loss Keras reports adds the layer losses (e.g. L2 on scores) to every batch.
        nll = program.per_example_loss(loss_fn, yb, logits)
        nll = nll + sum(losses) if losses else nll
        correct = (jnp.argmax(logits, axis=-1) == yb).astype("float32")
        return (trainable, non_trainable, opt_vars), jnp.stack([jnp.sum(nll * wb), jnp.sum(correct * wb)])

    def evaluate_one(state, x, y, w):
        """Every evaluation batch of one model in one ``lax.scan``: ``(state, means (2,))``."""
        state, sums = jax.lax.scan(lambda state, xyw: eval_batch(state, *xyw), state, (x, y, w))
        return state, sums.sum(axis=0) / jnp.sum(w)

    group = eval_group(model, count)
    if steps == "scan":
        def chunk_one(state, indices, train_data):
            state, (losses, accuracies) = jax.lax.scan(lambda s, idx: step(s, idx, train_data), state, indices)
            return state, jnp.stack([losses.sum(), accuracies.sum()])

        if count == 1:
            return (splits, train_data, jax.jit(chunk_one, donate_argnums=0),
                    jax.jit(evaluate_one, donate_argnums=0))

        def evaluate_all(state, x, y, w):  # `group` models at a time, vmapped within a group
            return jax.lax.map(lambda s: evaluate_one(s, x, y, w), state, batch_size=group)

        return (splits, train_data, jax.jit(jax.vmap(chunk_one, in_axes=(0, 0, None)), donate_argnums=0),
                jax.jit(evaluate_all, donate_argnums=0))

    batched_step = jax.vmap(step, in_axes=(0, 0, None)) if count > 1 else step

    def accumulate(state, sums, idx, train_data):
        state, (loss, accuracy) = batched_step(state, idx, train_data)
        return state, sums + jnp.stack([loss, accuracy], axis=-1)

    def accumulate_eval(state, sums, xb, yb, wb):
        if count > 1:  # `group` models at a time, vmapped within a group
            state, batch_sums = jax.lax.map(lambda s: eval_batch(s, xb, yb, wb), state, batch_size=group)
        else:
            state, batch_sums = eval_batch(state, xb, yb, wb)
        return state, sums + batch_sums

    step_jit = jax.jit(accumulate, donate_argnums=(0, 1))
    eval_jit = jax.jit(accumulate_eval, donate_argnums=(0, 1))
    shape = (count, 2) if count > 1 else (2,)

    def chunk_loop(state, indices, train_data):
        indices = jnp.asarray(indices)
        if count > 1:
            indices = jnp.swapaxes(indices, 0, 1)  # (S, K, ...): one step of every model at a time
        sums = jnp.zeros(shape, jnp.float32)
        for idx in indices:  # one dispatch per step, the state updated in place (donated)
            state, sums = step_jit(state, sums, idx, train_data)
        return state, sums

    def evaluate_loop(state, x, y, w):
        sums = jnp.zeros(shape, jnp.float32)
        for xb, yb, wb in zip(x, y, w):
            state, sums = eval_jit(state, sums, xb, yb, wb)
        return state, sums / jnp.sum(w)

    return splits, train_data, chunk_loop, evaluate_loop


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
