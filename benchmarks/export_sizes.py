"""What does a ticket weigh? ONNX file size, accuracy and speed of fc on MNIST at several densities.

For each density, four exports of the same masked network, each run in onnxruntime on the
10 000 MNIST test images:

* ``dense``    our exporter, every tensor a dense float32 initializer (``--storage dense --ternary off``);
* ``sparse``   our exporter, ``--storage auto --ternary off`` (sparse_initializer where smaller);
* ``ternary``  our exporter on the SIGNED-CONSTANT version of the network: every kept weight
  replaced by ``sign(w) * mean |kept w|`` of its layer (not retrained: its accuracy is that of a
  different, lossy network), stored as int8 + scale (``--ternary auto``);
* ``ternary2`` the same with packed 2-bit entries (``--ternary-bits 2``, opset 25);
* ``ternary2c`` the same with ``--ternary-op cast`` (Cast + Mul, folded to float32 at load);
* ``keras``    Keras's own ``model.export(format="onnx")`` of the masked model on the active
  backend (tf2onnx / jax2onnx / torch.onnx).

The networks: by default fc trained ``--iterations`` on MNIST, then masked by magnitude to each
``--densities`` (every layer the same density; not retrained). ``--lottery DIR --levels 3,7``
uses those levels of a lottery experiment instead (retrained tickets, their own densities).
``--supermask RUN`` adds a trained supermask run. Throughput: images/s at batch 1000 (and at
batch 1, 100 images one by one), median of ``--repeats`` passes, onnxruntime CPU with
``--threads`` (1) intra-op threads, in a separate process without Keras; all files are timed
in turn, round after round, so the noise of a shared machine falls on all alike.

    SUPERMASK_DATA=../shared/data KERAS_BACKEND=jax python benchmarks/export_sizes.py

prints the tables and writes benchmarks/results/export_sizes.json (``--json``); with
``--all-backends`` it runs once per backend (subprocesses) and writes one JSON for all.
"""

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

BACKENDS = ("jax", "tensorflow", "torch")
VARIANTS = ("dense", "sparse", "ternary", "ternary2", "ternary2c", "keras")
# (storage, ternary, ternary_bits, ternary_op) of our exporter per variant
OURS = {"dense": ("dense", "off", 8, "dequantize"), "sparse": ("auto", "off", 8, "dequantize"),
        "ternary": ("auto", "auto", 8, "dequantize"), "ternary2": ("auto", "auto", 2, "dequantize"),
        "ternary2c": ("auto", "auto", 2, "cast")}


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def magnitude_masks(model, density):
    from supermask import masks as M
    from supermask.pruning import prune

    kernels = M.kernels(M.get_weights(model))
    keep = {name: max(1, round(density * k.size)) for name, k in kernels.items()}
    return prune({n: abs(k) for n, k in kernels.items()}, {n: k != 0 for n, k in kernels.items()}, keep)


def signed_constant_clone(model, build):
    """A copy of masked ``model`` whose kept weights are ``sign(w) * mean |kept w|`` per layer."""
    import numpy as np

    from supermask import masks as M

    clone = build()
    weights, masks = M.get_weights(model), M.get_masks(model)
    for name, mask in masks.items():
        kernel = weights[f"{name}/kernel"]
        scale = np.float32(np.abs(kernel[mask]).mean()) if mask.any() else np.float32(1.0)
        weights[f"{name}/kernel"] = (np.sign(kernel) * scale * mask).astype(np.float32)
    M.set_weights(clone, weights)
    M.set_masks(clone, masks)
    return clone


def export_variant(model, variant, data, path):
    """Export one variant to ``path``; return its row (size, accuracy, logit difference) or an error row."""
    import numpy as np

    from supermask.export import export_model, verify

    row = {"variant": variant}
    try:
        if variant == "keras":
            model(data.x_test[:1])  # Keras's exporter wants a model that has been called
            with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
                model.export(str(path), format="onnx", verbose=False)
        else:
            storage, ternary, bits, op = OURS[variant]
            report = export_model(model, path, storage=storage, ternary=ternary, ternary_bits=bits,
                                  ternary_op=op, verify=False)
            row["storage"] = {r["layer"]: f"{r['storage']} {r['dtype']}" for r in report.layers}
        sess = verify.session(path)
        logits = verify.run(sess, data.x_test)
    except Exception as exc:  # report, don't stop: e.g. an exporter that fails on this backend
        return {**row, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    reference = verify.keras_logits(model, data.x_test)
    return {**row, "bytes": path.stat().st_size, "gzip_bytes": len(gzip.compress(path.read_bytes(), 9)),
            "accuracy": float(np.mean(logits.argmax(-1) == data.y_test)),
            "max_abs_diff_vs_keras": float(np.abs(logits - reference).max())}


def time_files(paths, data_dir, repeats, threads, batch_size=1000, singles=100):
    """Images/s of each ONNX file at batch ``batch_size`` and at batch 1 (``singles`` images one by
    one): ``repeats`` rounds timing every file once, median per file.

    Runs in its own process without Keras (``--time-files``), so no backend thread pool
    competes with onnxruntime. Interleaving spreads the noise of a shared machine evenly over
    the files. One onnxruntime thread by default: on the shared 2-core machine, two threads
    gave 50k-330k images/s for the same file from one second to the next, one thread 115k-175k.
    """
    import statistics
    import time

    from supermask.data import load_dataset
    from supermask.export import verify

    batch = load_dataset("mnist", data_dir=data_dir).x_test[:batch_size]
    sessions = [verify.session(p, threads) for p in paths]
    names = [s.get_inputs()[0].name for s in sessions]
    for sess, name in zip(sessions, names):  # warm-up
        sess.run(None, {name: batch})
    times = [([], []) for _ in sessions]
    for _ in range(repeats):
        for (sess, name), (big, small) in zip(zip(sessions, names), times):
            start = time.perf_counter()
            sess.run(None, {name: batch})
            big.append(time.perf_counter() - start)
            start = time.perf_counter()
            for i in range(singles):
                sess.run(None, {name: batch[i:i + 1]})
            small.append(time.perf_counter() - start)
    return [{"images_per_second": len(batch) / statistics.median(big),
             "images_per_second_batch1": singles / statistics.median(small)} for big, small in times]


def networks(args, data):
    """Yield (label, overall density, model, signed-constant model or None)."""
    import keras

    from supermask import masks as M
    from supermask.export.runs import load_model, resolve
    from supermask.models import build as build_model
    from supermask.pruning import overall_density
    from supermask.train import compile_model, make_optimizer, train_model

    def build():
        return build_model("fc", data.input_shape, data.num_classes, seed=args.seed)

    if args.lottery:
        for level in [int(v) for v in args.levels.split(",")]:
            model = load_model(resolve(args.lottery, level=level))
            signed = signed_constant_clone(model, build)
            yield f"lottery level {level}", overall_density(M.get_masks(model)), model, signed
    else:
        keras.utils.set_random_seed(args.seed)
        trained = build()
        compile_model(trained, make_optimizer(1.2e-3))
        train_model(trained, data, iterations=args.iterations, batch_size=60, seed=args.seed,
                    eval_every=args.iterations, verbose=0)
        weights = M.get_weights(trained)
        for density in [float(v) for v in args.densities.split(",")]:
            model = build()
            M.set_weights(model, weights)
            masks = magnitude_masks(trained, density)
            M.set_masks(model, masks)
            yield f"magnitude {100 * density:g}%", overall_density(masks), model, signed_constant_clone(model, build)
    for run_dir in args.supermask or []:
        model = load_model(resolve(run_dir))
        yield f"supermask {Path(run_dir).name}", overall_density(M.get_masks(model)), model, None


def run_backend(args):
    from supermask import backend
    from supermask.data import load_dataset

    data = load_dataset("mnist", data_dir=args.data_dir)
    rows, files = [], []
    with tempfile.TemporaryDirectory() as folder:
        for index, (label, density, model, signed) in enumerate(networks(args, data)):
            for variant in VARIANTS:
                # A supermask run has no signed clone: its ternary row is ternary where its own kernels are.
                net = signed if variant.startswith("ternary") and signed is not None else model
                path = Path(folder) / f"{index}_{variant}.onnx"
                rows.append({"backend": backend.name(), "network": label, "density": density,
                             **export_variant(net, variant, data, path)})
                files.append(None if "error" in rows[-1] else path)
        timed = [p for p in files if p is not None]
        cmd = [sys.executable, __file__, "--time-files", *map(str, timed), "--repeats", str(args.repeats),
               "--threads", str(args.threads)]
        cmd += ["--data-dir", args.data_dir] if args.data_dir else []
        speeds = iter(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    for row, path in zip(rows, files):
        if path is not None:
            row.update(next(speeds))
        print(format_row(row), flush=True)
    return rows


def format_row(r):
    if "error" in r:
        return f"{r['backend']:<10} {r['network']:<24} {100 * r['density']:6.2f}%  {r['variant']:<9} {r['error']}"
    return (f"{r['backend']:<10} {r['network']:<24} {100 * r['density']:6.2f}%  {r['variant']:<9} "
            f"{r['bytes'] / 1024:9.1f} {r['gzip_bytes'] / 1024:9.1f} {100 * r['accuracy']:7.2f}% "
            f"{r['images_per_second']:10,.0f} {r['images_per_second_batch1']:9,.0f} {r['max_abs_diff_vs_keras']:9.1e}")


HEADER = (f"{'backend':<10} {'network':<24} {'density':>7}  {'variant':<9} {'KiB':>9} {'gzip KiB':>9} "
          f"{'test acc':>8} {'images/s':>10} {'batch 1':>9} {'|d logit|':>9}")


def markdown(rows):
    """The rows as one markdown table per backend."""
    lines = []
    for b in dict.fromkeys(r["backend"] for r in rows):
        lines += [f"**{b}**", "", "| network | density | variant | KiB | gzip KiB | test acc | images/s (batch 1000) "
                  "| images/s (batch 1) |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in (r for r in rows if r["backend"] == b):
            head = f"| {r['network']} | {100 * r['density']:.2f}% | {r['variant']} |"
            if "error" in r:
                lines.append(f"{head} fails: {r['error'][:90]} | | | | |")
            else:
                lines.append(f"{head} {r['bytes'] / 1024:.1f} | {r['gzip_bytes'] / 1024:.1f} | "
                             f"{100 * r['accuracy']:.2f}% | {r['images_per_second']:,.0f} | "
                             f"{r['images_per_second_batch1']:,.0f} |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--densities", default="0.5,0.2,0.05,0.02", help="magnitude-pruning densities")
    parser.add_argument("--iterations", type=int, default=2000, help="training iterations of the base fc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lottery", default=None, help="a lottery experiment/trial folder to take tickets from")
    parser.add_argument("--levels", default="3,7,13,16", help="its levels (with --lottery)")
    parser.add_argument("--supermask", action="append", help="a trained supermask run folder (repeatable)")
    parser.add_argument("--repeats", type=int, default=21, help="timed passes per throughput (median)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads for the timing "
                                                                "(default 1: steadier on a shared machine)")
    parser.add_argument("--data-dir", default=None, help="default: $SUPERMASK_DATA")
    parser.add_argument("--all-backends", action="store_true", help="one subprocess per backend")
    parser.add_argument("--json", default="benchmarks/results/export_sizes.json")
    parser.add_argument("--markdown", default=None, help="also write the tables as markdown to this file")
    parser.add_argument("--time-files", nargs="+", default=None, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()

    if args.time_files:
        print(json.dumps(time_files(args.time_files, args.data_dir, args.repeats, args.threads)))
        return

    if args.all_backends:
        rows = []
        for b in BACKENDS:
            out = Path(args.json).with_suffix(f".{b}.tmp")
            argv = [a for a in sys.argv[1:] if a != "--all-backends"]
            cmd = [sys.executable, __file__, *argv, "--json", str(out)]
            done = subprocess.run(cmd, env={**os.environ, "KERAS_BACKEND": b}, stdout=subprocess.DEVNULL)
            if done.returncode != 0 or not out.exists():
                print(f"KERAS_BACKEND={b}: the benchmark failed (exit {done.returncode}); see its stderr above")
                continue
            rows += json.loads(out.read_text())["rows"]
            out.unlink()
    else:
        print(HEADER, flush=True)
        rows = run_backend(args)

    print(f"\nfc on MNIST, onnxruntime CPU ({args.threads} thread), batch 1000, median of {args.repeats}; "
          f"{cpu_name()}, {os.cpu_count()} cores\n{HEADER}")
    for row in rows:
        print(format_row(row))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "benchmark": "export_sizes", "machine": platform.platform(), "cpu": cpu_name(),
        "cpu_count": os.cpu_count(), "onnxruntime_threads": args.threads, "repeats": args.repeats,
        "command": " ".join(["python", "benchmarks/export_sizes.py", *sys.argv[1:]]),
        "rows": rows}, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
