"""Training speed: plain Keras ``fit`` vs our engines vs hand-written references, per backend.

    SUPERMASK_DATA=../shared/data .venv/bin/python benchmarks/speed.py

Every installed backend runs in its own process (``--worker BACKEND``). For ``fc`` on MNIST
(real data when ``SUPERMASK_DATA`` holds it, else random MNIST-shaped data) and ``conv2`` on
random CIFAR-shaped data (45 000 / 5 000 / 10 000 images; by default only where a GPU is
present, since a conv2 step takes ~0.4 s on a 2-core CPU), batch 60, Adam, it measures
seconds per epoch of:

* ``keras_fit``: a plain ``keras.layers.Dense``/``Conv2D`` model trained by one ``fit`` call,
  evaluating nothing (the baseline);
* ``engine_fit_eval100``: our reference engine (``--engine fit``: ``fit`` per 100-step chunk,
  then validation and test evaluation), the papers' protocol;
* ``engine_eval100`` / ``engine_eval_end``: our compiled engine, evaluating every 100
  iterations / only at the start and end;
* ``fused_jax`` (JAX only): the same masked model written by hand in JAX, data on the
  device, one jitted ``lax.scan`` over the steps, hand-written Adam;
* ``plain_torch`` (PyTorch only): the same masked model written by hand in PyTorch with
  ``torch.optim.Adam``, data on the device, a plain loop;

and ticket-epochs per second of ``train_many`` for K = 1, 8, 64 masked networks at once
(evaluation every 100 steps; K = 64 on TensorFlow and PyTorch only with a GPU, as they loop over
the K models). Each number is the median of ``--repeats`` timed runs after one
warm-up run (which pays compilation); a run is ``--steps`` steps (default 900 for fc, 200 for
conv2: whole 100-step evaluation periods), scaled to an epoch. Our engines are timed inside one
``train_many`` call of (repeats + 1) runs, between its record points, the first run dropped.
Ratios are taken within one process, side by side.

Convolutional nets are also timed per training step (``--conv conv2,resnet20``, the default,
on every machine): Keras ``fit``, each backend's hand-written reference, the engine for one and
two models and the engine's former conv form (``benchmarks/conv_speed.py``'s docstring); and
``--lottery-iterations N`` times a whole resnet20 lottery on Fashion-MNIST (2 levels with
control, N iterations per level). ``benchmarks/gpu.sh`` runs the GPU measurements in one call.
Writes ``benchmarks/results/speed.json`` with the machine's description.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import conv_speed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "speed.json"
BACKENDS = ("tensorflow", "jax", "torch")
BATCH = 60
KS = (1, 8, 64)


# --- data and models ------------------------------------------------------------------------------


def dataset(model_name):
    """The benchmark's data: real MNIST for fc where available, random CIFAR shapes for conv2."""
    from supermask.data import Dataset, load_dataset

    if model_name == "fc" and os.environ.get("SUPERMASK_DATA"):
        try:
            return load_dataset("mnist", download=False), "mnist"
        except Exception:  # no MNIST there: fall back to random data of its shape
            pass
    shape, n = ((28, 28, 1), 55_000) if model_name == "fc" else ((32, 32, 3), 45_000)
    rng = np.random.default_rng(0)

    def split(count):
        return rng.random((count, *shape), dtype=np.float32), rng.integers(0, 10, count).astype(np.int32)

    x, y = split(n)
    xv, yv = split(5_000)
    xt, yt = split(10_000)
    return Dataset("random", x, y, xv, yv, xt, yt), "random MNIST-shaped" if model_name == "fc" else \
        "random CIFAR-shaped"


def plain_keras(model_name, input_shape):
    """The same architecture from plain Keras layers (no masks)."""
    import keras

    from supermask.models import get_spec

    spec = get_spec(model_name)
    layers = [keras.Input(input_shape)]
    for filters in spec.conv_filters:
        layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu") for _ in range(2)]
        layers.append(keras.layers.MaxPooling2D(2))
    layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(units, activation="relu") for units in spec.dense_units]
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers)


def masked_model(model_name, input_shape, seed):
    from supermask import masks as M
    from supermask.models import build as build_model
    from supermask.train import compile_model, make_optimizer

    model = build_model(model_name, input_shape, seed=seed)
    rng = np.random.default_rng(seed)
    M.set_masks(model, {k: rng.random(v.shape) < 0.2 for k, v in M.kernels(M.get_weights(model)).items()})
    compile_model(model, make_optimizer(1e-3))
    return model


def median_time(fn, repeats):
    fn()  # warm-up: compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- hand-written references --------------------------------------------------------------------


def fused_jax(model_name, data, steps, repeats):
    """Seconds for ``steps`` steps of a hand-written JAX model (masked kernels, as ours): one
    jitted lax.scan, data on the device."""
    import jax
    import jax.numpy as jnp

    from supermask.models import get_spec

    spec = get_spec(model_name)
    key = jax.random.PRNGKey(0)
    params, shape = [], data.x_train.shape[1:]
    channels = shape[-1]
    for filters in spec.conv_filters:
        for _ in range(2):
            key, sub = jax.random.split(key)
            params.append((jax.random.normal(sub, (3, 3, channels, filters)) * 0.05, jnp.zeros(filters)))
            channels = filters
    features = int(np.prod(shape[:2])) // (4 ** len(spec.conv_filters)) * channels
    for units in (*spec.dense_units, 10):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (features, units)) * 0.05, jnp.zeros(units)))
        features = units
    n_conv = 2 * len(spec.conv_filters)

    rng = np.random.default_rng(0)
    masks = [jnp.asarray(rng.random(w.shape) < 0.2, dtype=jnp.float32) for w, _ in params]  # as masked_model

    def forward(params, x):
        for i, ((w, b), mask) in enumerate(zip(params, masks)):
            w = w * mask
            if i < n_conv:
                x = jax.nn.relu(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                              dimension_numbers=("NHWC", "HWIO", "NHWC")) + b)
                if i % 2 == 1:
                    x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            else:
                x = x.reshape(x.shape[0], -1) if i == n_conv else x
                x = x @ w + b
                x = jax.nn.relu(x) if i < len(params) - 1 else x
        return x

    def loss_fn(params, x, y):
        logits = forward(params, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)

    def step(state, idx):
        params, m, v, t = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x_train[idx], y_train[idx])
        t = t + 1
        m = jax.tree_util.tree_map(lambda a, g: 0.9 * a + 0.1 * g, m, grads)
        v = jax.tree_util.tree_map(lambda a, g: 0.999 * a + 0.001 * g * g, v, grads)
        lr = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        params = jax.tree_util.tree_map(lambda p, a, b: p - lr * a / (jnp.sqrt(b) + 1e-7), params, m, v)
        return (params, m, v, t), loss

    epoch = jax.jit(lambda state, idx: jax.lax.scan(step, state, idx))
    idx = jnp.asarray(np.random.default_rng(0).integers(0, len(data.x_train), (steps, BATCH)).astype(np.int32))
    state = (params, m, v, jnp.float32(0))

    def run():
        jax.block_until_ready(epoch(state, idx))

    return median_time(run, repeats)


def plain_torch(model_name, data, steps, repeats):
    """Seconds for ``steps`` steps of a hand-written torch model (masked kernels, as ours) with
    ``torch.optim.Adam``, data on the device, a plain loop."""
    import torch
    import torch.nn.functional as F

    from supermask.models import get_spec

    spec = get_spec(model_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(0)
    shapes, channels = [], data.x_train.shape[-1]
    for filters in spec.conv_filters:
        for _ in range(2):
            shapes.append((filters, channels, 3, 3))
            channels = filters
    features = int(np.prod(data.x_train.shape[1:3])) // (4 ** len(spec.conv_filters)) * channels
    for units in (*spec.dense_units, 10):
        shapes.append((features, units))
        features = units
    weights = [torch.nn.Parameter(torch.randn(shape, device=device) * 0.05) for shape in shapes]
    biases = [torch.nn.Parameter(torch.zeros(shape[0] if len(shape) == 4 else shape[1], device=device))
              for shape in shapes]
    masks = [torch.as_tensor(rng.random(shape) < 0.2, dtype=torch.float32, device=device) for shape in shapes]
    n_conv = 2 * len(spec.conv_filters)

    def forward(x):
        for i, (w, b, m) in enumerate(zip(weights, biases, masks)):
            if i < n_conv:
                x = F.relu(F.conv2d(x, w * m, b, padding=1))
                x = F.max_pool2d(x, 2) if i % 2 == 1 else x
            else:
                x = x.flatten(1) if i == n_conv else x
                x = x @ (w * m) + b
                x = F.relu(x) if i < len(weights) - 1 else x
        return x

    optimizer = torch.optim.Adam([*weights, *biases], lr=1e-3)
    x_train = torch.as_tensor(data.x_train, device=device).permute(0, 3, 1, 2).contiguous()
    y_train = torch.as_tensor(data.y_train, device=device).long()
    idx = torch.as_tensor(np.random.default_rng(0).integers(0, len(data.x_train), (steps, BATCH)), device=device)

    def run():
        for batch in idx:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(forward(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return median_time(run, repeats)


# --- one backend -------------------------------------------------------------------------------


def note(model_name, what, value):
    """``value``, printed as it is measured: a long run shows its progress (and a run stopped
    part-way what it had)."""
    import keras

    print(f"[{keras.backend.backend()}] {model_name} {what}: {value:.4f}", file=sys.stderr, flush=True)
    return value


def measure_backend(steps_fc, steps_conv, repeats, ks, models, conv=(), conv_steps=10, former_steps=2,
                    lottery_iterations=0):
    import keras

    from supermask import backend
    from supermask.engine import train_many

    out = {"backend": backend.name(), "models": {}, "conv": {}}
    for model_name in conv:  # seconds per step, side by side (conv_speed.py)
        out["conv"][model_name] = conv_speed.measure(model_name, conv_steps, repeats, former_steps)
    if lottery_iterations:
        out["lottery"] = conv_speed.lottery_wall(lottery_iterations)
    for model_name in models:
        data, source = dataset(model_name)
        # A run is a whole number of 100-step evaluation periods (fc: 900 of an epoch's 917).
        steps = (steps_fc if model_name == "fc" else steps_conv) or 100 * (len(data.x_train) // BATCH // 100)
        steps_per_epoch = len(data.x_train) / BATCH
        per_epoch = steps_per_epoch / steps
        shape = data.input_shape
        idx = np.random.default_rng(0).integers(0, len(data.x_train), steps * BATCH)
        x, y = data.x_train[idx], data.y_train[idx]
        row = {"data": source, "steps_per_run": steps, "steps_per_epoch": steps_per_epoch}

        keras.backend.clear_session()
        plain = plain_keras(model_name, shape)
        plain.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=backend.jit_compile(),
                      steps_per_execution=backend.steps_per_execution())
        row["keras_fit"] = note(model_name, "keras_fit", per_epoch * median_time(
            lambda: plain.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0), repeats))

        def ours(engine, eval_every, k=1, period=steps):
            """Seconds per ``period`` steps in steady state: one train_many call of
            (repeats + 1) periods, timed between its record points (the first period pays
            compilation and is dropped)."""
            keras.backend.clear_session()
            nets = [masked_model(model_name, shape, seed) for seed in range(k)]
            result = train_many(nets, data, iterations=period * (repeats + 1), batch_size=BATCH,
                                seeds=list(range(k)), eval_every=eval_every, verbose=0, engine=engine)[0]
            seconds = {r["iteration"]: r["seconds"] for r in result.history}
            return statistics.median(seconds[period * (i + 1)] - seconds[period * i] for i in range(1, repeats + 1))

        row["engine_fit_eval100"] = note(model_name, "engine_fit_eval100", per_epoch * ours("fit", 100))
        row["engine_eval100"] = note(model_name, "engine_eval100", per_epoch * ours("compiled", 100))
        row["engine_eval_end"] = note(model_name, "engine_eval_end", per_epoch * ours("compiled", steps))
        if backend.name() == "jax":
            row["fused_jax"] = note(model_name, "fused_jax", per_epoch * fused_jax(model_name, data, steps, repeats))
        if backend.name() == "torch":
            row["plain_torch"] = note(model_name, "plain_torch", per_epoch * plain_torch(model_name, data, steps, repeats))
        row["ticket_epochs_per_second"] = {}
        k_steps = min(steps, 100)
        # TensorFlow and PyTorch train K models one after the other: on a CPU, K = 64 only adds time.
        for k in [k for k in ks if backend.name() == "jax" or k <= 8 or machine()["gpu"]]:
            try:
                seconds = ours("compiled", k_steps, k=k, period=k_steps)
            except Exception as exc:  # out of memory on a small machine
                row["ticket_epochs_per_second"][str(k)] = f"failed: {type(exc).__name__}"
                continue
            row["ticket_epochs_per_second"][str(k)] = note(model_name, f"ticket-epochs/s K={k}",
                                                           k * (k_steps / steps_per_epoch) / seconds)
        out["models"][model_name] = row
        print(f"[{backend.name()}] {model_name}: done", file=sys.stderr, flush=True)
    return out


def machine():
    """A description of this machine: OS, CPU, cores, and the GPU where one is present."""
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = None
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cores": os.cpu_count(), "gpu": gpu, "date": time.strftime("%Y-%m-%d")}


def installed_backends():
    import importlib.util

    return [b for b in BACKENDS if importlib.util.find_spec(b if b != "tensorflow" else "tensorflow")]


RATIOS = [("engine_fit_eval100", "keras_fit"), ("engine_eval100", "keras_fit"), ("engine_eval_end", "keras_fit"),
          ("engine_eval_end", "fused_jax"), ("engine_eval100", "plain_torch"), ("engine_eval_end", "plain_torch")]


def table(results):
    lines = ["| backend | model | keras fit s/epoch | engine=fit, eval/100 | engine, eval/100 | engine, eval at end "
             "| fused JAX | plain torch | ticket-epochs/s K=1 / 8 / 64 |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        for name, row in r["models"].items():
            base = row["keras_fit"]

            def cell(key):
                if key not in row:
                    return "–"
                return f"{row[key]:.3f}" + ("" if key == "keras_fit" else f" ({row[key] / base:.2f}×)")

            k = row["ticket_epochs_per_second"]
            ks = " / ".join(f"{k[str(n)]:.2f}" if isinstance(k.get(str(n)), float) else "–" for n in KS)
            lines.append(f"| {r['backend']} | {name} | {cell('keras_fit')} | {cell('engine_fit_eval100')} | "
                         f"{cell('engine_eval100')} | {cell('engine_eval_end')} | {cell('fused_jax')} | "
                         f"{cell('plain_torch')} | {ks} |")
    lines.append("")
    lines.append("Ratios (same process, side by side):")
    for r in results:
        for name, row in r["models"].items():
            parts = [f"{a}/{b} {row[a] / row[b]:.2f}" for a, b in RATIOS if a in row and b in row]
            lines.append(f"  {r['backend']} {name}: " + ", ".join(parts))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma list (default: all installed)")
    parser.add_argument("--models", default=None,
                        help="comma list of fc, conv2 timed per epoch with K tickets (default: both on a GPU machine, "
                             "fc alone on a CPU: a conv2 step takes ~0.3 s on a 2-core CPU); none for neither")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per number; the median is kept")
    parser.add_argument("--steps-fc", type=int, default=None,
                        help="steps per fc run, a multiple of 100 (default 900, about one epoch)")
    parser.add_argument("--steps-conv", type=int, default=200,
                        help="steps per conv2 run, a multiple of 100 (default 200)")
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="K values for train_many (default 1,8,64)")
    parser.add_argument("--conv", default="conv2,resnet20",
                        help="conv nets timed per step against each backend's references (conv_speed.py); '' for none")
    parser.add_argument("--conv-steps", type=int, default=10, help="steps per timed conv chunk (default 10)")
    parser.add_argument("--former-steps", type=int, default=2,
                        help="steps per chunk of the engine's former conv form (slow on a CPU; 0 skips it)")
    parser.add_argument("--lottery-iterations", type=int, default=0,
                        help="if > 0, also time a resnet20 lottery on Fashion-MNIST (2 levels with control) "
                             "of this many iterations per level")
    parser.add_argument("--out", default=str(RESULTS), help=f"JSON output (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    unknown = [m for m in args.conv.split(",") if m and m not in conv_speed.RECIPES]
    if unknown:
        parser.error(f"--conv takes {', '.join(conv_speed.RECIPES)} (comma-separated) or ''. Received: {unknown}")
    args.models = args.models or ("fc,conv2" if machine()["gpu"] else "fc")
    models = [] if args.models == "none" else args.models.split(",")
    if args.worker:
        conv = [m for m in args.conv.split(",") if m]
        result = measure_backend(args.steps_fc, args.steps_conv, args.repeats, ks, [m for m in models if m], conv,
                                 args.conv_steps, args.former_steps, args.lottery_iterations)
        Path(args.worker_out).write_text(json.dumps(result))
        return
    results = []
    wanted = [b for b in args.backends.split(",") if b in installed_backends()]
    if not wanted:
        parser.error(f"none of --backends {args.backends} is installed here")
    for name in wanted:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            path = tmp.name
        cmd = [sys.executable, __file__, "--worker", name, "--worker-out", path, "--repeats", str(args.repeats),
               "--steps-conv", str(args.steps_conv), "--ks", args.ks, "--models", args.models, "--conv", args.conv,
               "--conv-steps", str(args.conv_steps), "--former-steps", str(args.former_steps),
               "--lottery-iterations", str(args.lottery_iterations)]
        if args.steps_fc:
            cmd += ["--steps-fc", str(args.steps_fc)]
        print(f"measuring {name}...", flush=True)
        python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        proc = subprocess.run(cmd, env={**os.environ, "KERAS_BACKEND": name, "PYTHONPATH": python_path})
        if proc.returncode == 0:
            results.append(json.loads(Path(path).read_text()))
        else:
            print(f"{name}: worker failed with exit status {proc.returncode}", file=sys.stderr)
        os.unlink(path)
        # Written after every backend, so a run stopped part-way keeps what it measured.
        report = {"machine": machine(), "batch_size": BATCH, "repeats": args.repeats, "results": results}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    if any(r.get("conv") for r in results):
        print("\nConvolutional nets, seconds per training step (conv_speed.py):")
        print(conv_speed.table(results))
    print(conv_speed.lottery_table(results))
    print(f"\nmachine: {report['machine']}\nwrote {out}")


if __name__ == "__main__":
    main()
