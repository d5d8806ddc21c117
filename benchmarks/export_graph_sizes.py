"""ONNX file sizes of the Functional built-ins (resnet20, vgg16) at several densities.

For each model and each global-pruning level L (density 0.8^L of the pruned weights; VGG-16's
output layer is never pruned, as open_lth), the masked model (seeded initial weights, random
BatchNormalization statistics so that folding them matters; not trained: this measures the
format, not accuracy) is pruned by global magnitude (``pruning.prune_global_level``) and exported
twice by ``supermask.export.export_model``: every tensor dense (``--storage dense``) and per tensor
whichever is smaller (``--storage auto``: sparse_initializer below ~1/3 density). Each file is
verified against Keras in onnxruntime on 64 random images before it is kept; the table gives the
largest logit difference and the argmax agreement of that check, and the sizes gzipped.

    KERAS_BACKEND=jax python benchmarks/export_graph_sizes.py

prints the table and writes benchmarks/results/export_graph_sizes.json and
results/export_graph_sizes.md.
"""

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADER = (f"{'model':<9} {'level':>5} {'density':>8} {'dense B':>11} {'auto B':>11} {'auto/dense':>10} "
          f"{'gzip auto B':>11} {'max|Δ|':>9} {'argmax':>7}")


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def measure(name, levels, seed=0):
    import keras

    from supermask import masks as M
    from supermask.export import export_model
    from supermask.models import build, get_spec
    from supermask.pruning import ones_like, overall_density, prune_global_level

    keras.utils.set_random_seed(seed)
    model = build(name, (32, 32, 3), 10, seed=seed)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "moving_mean" in variable.path or "beta" in variable.path:
            variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))
        if "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    weights = M.get_weights(model)
    base = M.get_masks(model)
    scores = {k: np.abs(v) for k, v in M.kernels(weights, base).items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            masks = ones_like(base) if level == 0 else prune_global_level(
                scores, base, 0.2, level, ignore=get_spec(name).prune_ignore)
            M.set_masks(model, masks)
            dense = export_model(model, Path(tmp) / "dense.onnx", storage="dense", ternary="off")
            auto = export_model(model, Path(tmp) / "auto.onnx", storage="auto", ternary="off")
            zipped = len(gzip.compress(auto.path.read_bytes(), compresslevel=6))
            rows.append({"model": name, "level": level, "density": overall_density(masks),
                         "dense_bytes": dense.bytes, "auto_bytes": auto.bytes, "gzip_auto_bytes": zipped,
                         "max_abs_diff": auto.check.max_abs_diff, "max_abs_logit": auto.check.max_abs_logit,
                         "argmax_agreement": auto.check.argmax_agreement,
                         "backend": keras.backend.backend()})
            print(format_row(rows[-1]), flush=True)
    return rows


def format_row(r):
    return (f"{r['model']:<9} {r['level']:>5} {100 * r['density']:>7.2f}% {r['dense_bytes']:>11,} "
            f"{r['auto_bytes']:>11,} {r['auto_bytes'] / r['dense_bytes']:>10.3f} {r['gzip_auto_bytes']:>11,} "
            f"{r['max_abs_diff']:>9.1e} {100 * r['argmax_agreement']:>6.1f}%")


def markdown(rows, meta):
    lines = ["# ONNX export of resnet20 and vgg16: file size by density", "",
             f"`{meta['command']}` on {meta['cpu']} ({meta['cpu_count']} cores), KERAS_BACKEND="
             f"{rows[0]['backend']}, {meta['date']}. Global magnitude pruning of the seeded initial "
             "weights (0.8^level of the pruned weights; vgg16's output layer never pruned), "
             "BatchNormalization folded into the convolutions; every file verified against Keras in "
             "onnxruntime on 64 random images (largest logit difference, argmax agreement). Not trained: "
             "this measures the format, not accuracy.", "",
             "| model | level | density | dense (bytes) | auto (bytes) | auto / dense | auto, gzip (bytes) | "
             "max abs. logit diff. | argmax agreement |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['level']} | {100 * r['density']:.2f} % | {r['dense_bytes']:,} | "
                     f"{r['auto_bytes']:,} | {r['auto_bytes'] / r['dense_bytes']:.3f} | {r['gzip_auto_bytes']:,} | "
                     f"{r['max_abs_diff']:.1e} | {100 * r['argmax_agreement']:.0f} % |")
    lines += ["", "`auto` stores a tensor as a sparse_initializer (int64 linear indices + float32 values, 12 bytes "
              "per nonzero) where that is smaller than dense (below ~1/3 density), so the file shrinks once a "
              "layer's density falls under a third.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,vgg16")
    parser.add_argument("--levels", default="0,3,7,11,15", help="global pruning levels (density 0.8^L)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/export_graph_sizes.json"))
    parser.add_argument("--markdown", default=str(ROOT / "results/export_graph_sizes.md"))
    args = parser.parse_args(argv)
    import datetime

    levels = [int(v) for v in args.levels.split(",")]
    print(HEADER, flush=True)
    rows = [row for name in args.models.split(",") for row in measure(name.strip(), levels)]
    meta = {"benchmark": "export_graph_sizes", "machine": platform.platform(), "cpu": cpu_name(),
            "cpu_count": os.cpu_count(), "date": datetime.date.today().isoformat(),
            "command": " ".join(["python", "benchmarks/export_graph_sizes.py", *sys.argv[1:]])}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    Path(args.markdown).write_text(markdown(rows, meta))
    print(f"wrote {args.json} and {args.markdown}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
