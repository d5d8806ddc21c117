"""What do masks cost? Seconds per epoch of fc on MNIST: our masked model vs plain keras Dense.

Both models have the same layers (784-300-100-10, ReLU), the same optimiser, batches and
data order, and train through the same seam (``supermask.train.train_model``); the only
difference is ``MaskedDense`` (kernel * mask, here at 20 % density) vs ``keras.layers.Dense``.
Runs alternate between the two models and the median of the repeats is reported.

    SUPERMASK_DATA=../shared/data python benchmarks/mask_overhead.py --all-backends

prints a table and writes benchmarks/results/mask_overhead.json (or --json PATH).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")


def measure(epochs, repeats, data_dir):
    import keras
    import numpy as np

    from supermask import backend, masks
    from supermask.data import load_dataset
    from supermask.models import build as build_model
    from supermask.train import compile_model, make_optimizer, train_model

    data = load_dataset("mnist", data_dir=data_dir)

    def plain():
        return keras.Sequential([
            keras.Input((28, 28, 1)), keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu", kernel_initializer="glorot_normal"),
            keras.layers.Dense(100, activation="relu", kernel_initializer="glorot_normal"),
            keras.layers.Dense(10, kernel_initializer="glorot_normal"),
        ])

    def masked():
        model = build_model("fc", (28, 28, 1))
        rng = np.random.default_rng(0)
        masks.set_masks(model, {k: rng.random(v.shape) < 0.2
                                for k, v in masks.kernels(masks.get_weights(model)).items()})
        return model

    iterations = round(epochs * len(data.x_train) / 60)
    models = {}
    for name, make in (("dense", plain), ("masked", masked)):
        model = make()
        compile_model(model, make_optimizer(1.2e-3))
        # Warm-up: compile the train and eval functions outside the timed region.
        train_model(model, data, iterations=iterations, batch_size=60, eval_every=iterations, verbose=0)
        models[name] = model
    times = {name: [] for name in models}
    for r in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            train_model(model, data, iterations=iterations, batch_size=60, seed=r,
                        eval_every=iterations, verbose=0)
            times[name].append((time.perf_counter() - start) / epochs)
    dense, masked_s = statistics.median(times["dense"]), statistics.median(times["masked"])
    return {"backend": backend.name(), "epochs_per_run": epochs, "repeats": repeats,
            "dense_s_per_epoch": dense, "masked_s_per_epoch": masked_s,
            "ratio": masked_s / dense, "all_seconds_per_epoch": times}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="default: $SUPERMASK_DATA")
    parser.add_argument("--all-backends", action="store_true", help="one subprocess per backend")
    parser.add_argument("--json", default="benchmarks/results/mask_overhead.json")
    args = parser.parse_args()

    if args.all_backends:
        rows = []
        for b in BACKENDS:
            out = Path(args.json).with_suffix(f".{b}.tmp")
            cmd = [sys.executable, __file__, "--epochs", str(args.epochs), "--repeats", str(args.repeats),
                   "--json", str(out)] + (["--data-dir", args.data_dir] if args.data_dir else [])
            subprocess.run(cmd, check=True, env={**os.environ, "KERAS_BACKEND": b},
                           stdout=subprocess.DEVNULL)
            rows += json.loads(out.read_text())["rows"]
            out.unlink()
    else:
        rows = [measure(args.epochs, args.repeats, args.data_dir)]

    print(f"fc on MNIST, batch 60, {args.epochs:g} epoch(s) per run, median of {args.repeats}; "
          f"machine: {platform.machine()}, {os.cpu_count()} CPU cores")
    print(f"{'backend':<11} {'Dense s/epoch':>14} {'Masked s/epoch':>15} {'masked/dense':>13}")
    for row in rows:
        print(f"{row['backend']:<11} {row['dense_s_per_epoch']:>14.3f} {row['masked_s_per_epoch']:>15.3f} "
              f"{row['ratio']:>13.3f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"benchmark": "mask_overhead", "machine": platform.platform(),
                                           "cpu_count": os.cpu_count(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
