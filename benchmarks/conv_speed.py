"""Convolutional nets in ``benchmarks/speed.py``: seconds per training step and compile seconds.

For ``conv2`` (random CIFAR-shaped data, batch 60, Adam: the lottery papers' recipe) and
``resnet20`` (Fashion-MNIST where ``SUPERMASK_DATA`` holds it, else random data of its shape;
its own recipe: batch 128, SGD with momentum 0.9, weight decay 1e-4, crop-and-flip
augmentation), on the backend of the running process, side by side:

* ``keras_fit``: the same architecture from plain Keras layers (no masks), one ``fit`` call
  with Keras's default compile options (what a user writes);
* ``reference``: the backend's hand-written step over the same masked model: JAX, one jitted
  step (``stateless_call``, gradient, ``stateless_apply``, state donated) called from a Python
  loop; TensorFlow, a ``tf.function`` step without XLA over a ``GradientTape``; PyTorch, a plain
  ``torch.nn.functional`` model (masked kernels, ``F.batch_norm``) with ``torch.optim``;
* ``engine``: ``train_many``'s program for one model, in the form the engine chooses, then
  for two models (seconds per model);
* ``engine_former`` (JAX and TensorFlow): the form the engine ran before it chose per platform
  (JAX ``scan-each``, TensorFlow ``xla``), over a few steps only: it is that slow on a CPU.

A number is the median over ``repeats`` chunks of ``steps`` steps after a first chunk that pays
compilation; ``compile_s`` is that first chunk's time less a steady chunk's. The engine is timed
through its ``Program`` (``train_chunk``), evaluation excluded, as the references do.
"""

import inspect
import os
import statistics
import sys
import time

import numpy as np

RECIPES = {  # batch, optimiser, learning rate, momentum, weight decay, augmentation
    "conv2": dict(batch=60, optimizer="adam", lr=2e-4, momentum=0.0, weight_decay=0.0, augment=False),
    "resnet20": dict(batch=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, augment=True),
}
FORMER = {"jax": "scan-each", "tensorflow": "xla"}  # the engine's form for conv nets before it chose per platform


def dataset(model_name):
    """``(Dataset, description)``: Fashion-MNIST for resnet20 where available, else random images."""
    from supermask.data import Dataset, load_dataset

    if model_name == "resnet20" and os.environ.get("SUPERMASK_DATA"):
        try:
            return load_dataset("fashion_mnist", download=False), "fashion_mnist"
        except Exception:  # not there: random data of its shape
            pass
    shape, n = ((32, 32, 3), 45_000) if model_name == "conv2" else ((28, 28, 1), 55_000)
    rng = np.random.default_rng(0)

    def split(count):
        return rng.random((count, *shape), dtype=np.float32), rng.integers(0, 10, count).astype(np.int32)

    return Dataset("random", *split(n), *split(1_000), *split(1_000)), f"random {shape}"


def masked_model(model_name, shape, seed, recipe):
    """The engine's model: ``models.build``, random masks at 20 % density, compiled with the recipe."""
    from supermask import masks as M
    from supermask.models import build
    from supermask.train import compile_model, make_optimizer

    model = build(model_name, shape, seed=seed)
    rng = np.random.default_rng(seed)
    M.set_masks(model, {k: rng.random(m.shape) < 0.2 for k, m in M.get_masks(model).items()})
    compile_model(model, make_optimizer(recipe["lr"], name=recipe["optimizer"], momentum=recipe["momentum"]))
    return model


def indices(data, recipe, steps, count, seed=0):
    """``(count, steps, batch[, 4])`` int32 batch indices (with augmentation choices) for a Program."""
    from supermask.engine.augment import AugmentStream

    idx = np.random.default_rng(seed).integers(0, len(data.x_train), (count, steps, recipe["batch"]))
    if not recipe["augment"]:
        return idx.astype(np.int32)
    choices = np.stack([AugmentStream(recipe["batch"], seed + k).take(steps) for k in range(count)])
    return np.concatenate([idx[..., None], choices], axis=-1).astype(np.int32)


def timed_chunks(run, repeats):
    """``(median steady seconds, compile seconds)`` of ``run()`` called ``repeats + 1`` times."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    steady = statistics.median(times[1:])
    return steady, max(0.0, times[0] - steady)


def engine(model_name, data, recipe, steps, repeats, count=1, form=None):
    """Seconds per step (per model) and compile seconds of the engine's Program for ``count`` models."""
    import keras

    from supermask.engine.driver import program_for

    keras.backend.clear_session()
    models = [masked_model(model_name, data.input_shape, seed, recipe) for seed in range(count)]
    kwargs = {"form": form} if "form" in inspect.signature(program_for).parameters else {}
    program = program_for(models, data, recipe["batch"], "compiled", recipe["weight_decay"], recipe["augment"],
                          **kwargs)
    chunk = indices(data, recipe, steps, count)
    steady, compile_s = timed_chunks(lambda: program.train_chunk(chunk), repeats)
    return {"s_per_step": steady / steps / count, "compile_s": compile_s, "form": getattr(program, "form", None)}


def keras_fit(model_name, data, recipe, steps, repeats):
    """Seconds per step of a plain Keras model of the same architecture, one ``fit`` per chunk."""
    import keras

    from supermask import zoo
    from supermask.train import make_optimizer

    keras.backend.clear_session()
    plain = zoo.resnet20(data.input_shape) if model_name == "resnet20" else zoo.paper_model(model_name,
                                                                                          data.input_shape)
    plain.compile(optimizer=make_optimizer(recipe["lr"], name=recipe["optimizer"], momentum=recipe["momentum"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    idx = indices(data, {**recipe, "augment": False}, steps, 1)[0].reshape(-1)
    x, y = data.x_train[idx], data.y_train[idx]
    steady, compile_s = timed_chunks(lambda: plain.fit(x, y, batch_size=recipe["batch"], epochs=1, shuffle=False,
                                                       verbose=0), repeats)
    return {"s_per_step": steady / steps, "compile_s": compile_s}


def reference(model_name, data, recipe, steps, repeats):
    """Seconds per step of the backend's hand-written step (see the module docstring)."""
    import keras

    keras.backend.clear_session()
    name = keras.backend.backend()
    if name == "torch":
        from conv_reference_torch import train_steps  # benchmarks/ is on sys.path: speed.py runs from there
        run = train_steps(model_name, data, recipe, indices(data, recipe, steps, 1)[0])
    else:
        model = masked_model(model_name, data.input_shape, 0, recipe)
        chunk = indices(data, recipe, steps, 1)[0]
        run = (_jax_step if name == "jax" else _tf_step)(model, data, recipe, chunk)
    steady, compile_s = timed_chunks(run, repeats)
    return {"s_per_step": steady / steps, "compile_s": compile_s}


def _jax_step(model, data, recipe, chunk):
    import jax
    import jax.numpy as jnp

    from supermask.engine.augment import augment

    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    loss_fn, optimizer, decay = model.loss, model.optimizer, recipe["weight_decay"]
    optimizer.build(model.trainable_variables)
    state = [[v.value for v in variables] for variables in (model.trainable_variables,
                                                             model.non_trainable_variables, optimizer.variables)]

    def step(state, idx, x_train, y_train):  # the data as arguments: XLA would fold a constant into the program
        trainable, non_trainable, opt_vars = state
        x = x_train[idx[:, 0]] if recipe["augment"] else x_train[idx]
        y = y_train[idx[:, 0]] if recipe["augment"] else y_train[idx]
        if recipe["augment"]:
            x = augment(x, idx[:, 1:])

        def loss_of(trainable):
            logits, new = model.stateless_call(trainable, non_trainable, x, training=True)
            return loss_fn(y, logits) + 0.5 * decay * sum(jnp.sum(v * v) for v in trainable), new

        (loss, non_trainable), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return [trainable, non_trainable, opt_vars], loss

    jitted = jax.jit(step, donate_argnums=0)
    chunk = jnp.asarray(chunk)
    holder = [state]

    def run():
        state = holder[0]
        for idx in chunk:
            state, loss = jitted(state, idx, x_train, y_train)
        jax.block_until_ready(loss)
        holder[0] = state

    return run


def _tf_step(model, data, recipe, chunk):
    import tensorflow as tf

    from supermask.engine.augment import augment

    x_train, y_train = tf.constant(data.x_train), tf.constant(data.y_train)
    variables, optimizer, loss_fn, decay = model.trainable_variables, model.optimizer, model.loss, \
        recipe["weight_decay"]

    @tf.function(jit_compile=False)
    def step(idx):
        example = idx[:, 0] if recipe["augment"] else idx
        x, y = tf.gather(x_train, example), tf.gather(y_train, example)
        if recipe["augment"]:
            x = augment(x, idx[:, 1:])
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) + 0.5 * decay * tf.add_n(
                [tf.reduce_sum(v * v) for v in variables])
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    chunk = [tf.constant(idx) for idx in chunk]

    def run():
        for idx in chunk:
            loss = step(idx)
        loss.numpy()

    return run


def note(model_name, what, row):
    import keras

    print(f"[{keras.backend.backend()}] {model_name} {what}: {row['s_per_step']:.4f} s/step, compile "
          f"{row['compile_s']:.1f} s", file=sys.stderr, flush=True)
    return row


def measure(model_name, steps, repeats, former_steps=2):
    """One backend's row for ``model_name`` (see the module docstring)."""
    import keras

    name = keras.backend.backend()
    recipe = RECIPES[model_name]
    data, source = dataset(model_name)
    row = {"data": source, "batch_size": recipe["batch"], "steps_per_chunk": steps, "repeats": repeats}
    row["keras_fit"] = note(model_name, "keras_fit", keras_fit(model_name, data, recipe, steps, repeats))
    row["reference"] = note(model_name, "reference", reference(model_name, data, recipe, steps, repeats))
    row["engine"] = note(model_name, "engine K=1", engine(model_name, data, recipe, steps, repeats))
    row["engine_k2"] = note(model_name, "engine K=2 (per model)", engine(model_name, data, recipe, steps, repeats,
                                                                        count=2))
    if name in FORMER and former_steps:
        row["engine_former"] = note(model_name, f"engine {FORMER[name]}", engine(
            model_name, data, recipe, former_steps, 1, form=FORMER[name]))
    return row


def table(results):
    """Markdown: one line per (backend, model) with s/step, compile seconds and the ratios."""
    lines = ["| backend | model | keras fit s/step | reference s/step | engine s/step (form) | engine / reference "
             "| K=2 per model / K=1 | first chunk / steady | engine compile s | former form s/step |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        for name, row in r.get("conv", {}).items():
            e, ref, fit = row["engine"], row["reference"], row["keras_fit"]
            steady = e["s_per_step"] * row["steps_per_chunk"]
            former = row.get("engine_former")
            lines.append(
                f"| {r['backend']} | {name} | {fit['s_per_step']:.3f} | {ref['s_per_step']:.3f} | "
                f"{e['s_per_step']:.3f} ({e.get('form')}) | {e['s_per_step'] / ref['s_per_step']:.2f} | "
                f"{row['engine_k2']['s_per_step'] / e['s_per_step'] * 2:.2f} | "
                f"{(steady + e['compile_s']) / steady:.2f} | {e['compile_s']:.1f} | "
                + (f"{former['s_per_step']:.2f} ({former.get('form')})" if former else "–") + " |")
    return "\n".join(lines)


def lottery_wall(iterations):
    """Wall seconds of ``lottery.run``: resnet20 on Fashion-MNIST (from ``SUPERMASK_DATA``, else skipped),
    its recipe, 2 levels (level 1 trains the ticket and its random-reinit control together),
    ``iterations`` per level, evaluation every ``iterations // 2``; data loading included."""
    import tempfile

    from supermask import lottery

    if not os.environ.get("SUPERMASK_DATA"):
        return {"skipped": "SUPERMASK_DATA is not set (the lottery needs Fashion-MNIST)"}
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        rows = lottery.run(model="resnet20", dataset="fashion_mnist", levels=1, iterations=iterations,
                           eval_every=max(1, iterations // 2), control=True, root=root, verbose=0,
                           data_dir=os.environ["SUPERMASK_DATA"])
        seconds = time.perf_counter() - start
    row = next(iter(rows.values()))[-1]
    print(f"lottery resnet20: {seconds:.1f} s", file=sys.stderr, flush=True)
    return {"iterations_per_level": iterations, "levels": 2, "control": True, "seconds": seconds,
            "level1_final_test_accuracy": row.get("final_test_accuracy"),
            "level1_control_test_accuracy_at_early_stop": row.get("control_test_accuracy_at_early_stop")}


def lottery_table(results):
    """Markdown: the lottery wall time per backend."""
    rows = [(r["backend"], r["lottery"]) for r in results if "lottery" in r and "seconds" in r["lottery"]]
    if not rows:
        return ""
    iterations = rows[0][1]["iterations_per_level"]
    lines = [f"\nresnet20 lottery on Fashion-MNIST, 2 levels with control, {iterations} iterations per level:",
             "| backend | wall seconds |", "| --- | ---: |"]
    lines += [f"| {backend} | {row['seconds']:.1f} |" for backend, row in rows]
    return "\n".join(lines)
