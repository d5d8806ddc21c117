"""``python -m supermask.check ticket.onnx``: run an exported model in onnxruntime and report it.

    python -m supermask.check ticket.onnx --dataset mnist --data-dir ../shared/data/mnist

prints the file size, the density and storage of every layer (from the file's metadata),
the accuracy on the dataset's test split and the throughput (images/s at batch 1000, the
median of ``--repeats`` timed passes). It computes with onnxruntime and numpy only, never
Keras (which need not be installed).
"""

from pathlib import Path

from supermask.cli import ArgumentParser, run_main
from supermask.data import DATASETS, load_dataset
from supermask.errors import ConfigError
from supermask.export import verify

SPLITS = ("test", "val", "train")


def check(path, dataset=None, data_dir=None, split="test", batch_size=verify.BATCH_SIZE, repeats=5,
          threads=None):
    """Evaluate the ONNX file at ``path``; return a dict of what ``main`` prints.

    ``dataset`` defaults to the one in the file's hparams metadata, else mnist.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}. Received: split={split!r}")
    if batch_size < 1 or repeats < 1:
        raise ConfigError(f"batch_size and repeats must be >= 1. Received: {batch_size}, {repeats}")
    sess = verify.session(path, threads)
    meta = verify.metadata(path)
    hparams = meta.get("hparams") if isinstance(meta.get("hparams"), dict) else {}
    dataset = dataset or hparams.get("dataset") or "mnist"
    data = load_dataset(dataset, data_dir=data_dir, validation_size=hparams.get("validation_size", 5000))
    x, y = {"test": (data.x_test, data.y_test), "val": (data.x_val, data.y_val),
            "train": (data.x_train, data.y_train)}[split]
    expected = tuple(sess.get_inputs()[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise ConfigError(f"{path} takes inputs of shape {expected}, but {dataset} images are "
                          f"{tuple(x.shape[1:])}. Pass the --dataset the model was trained on.")
    if len(x) == 0:
        raise ConfigError(f"The {split} split of {dataset} is empty; choose another --split.")
    return {
        "path": str(path), "bytes": Path(path).stat().st_size, "dataset": dataset, "split": split,
        "count": len(x), "accuracy": verify.accuracy(sess, x, y, batch_size),
        "images_per_second": verify.throughput(sess, x, batch_size, repeats),
        "batch_size": batch_size, "density": meta.get("density", {}), "storage": meta.get("storage", {}),
        "overall_density": meta.get("overall_density"), "metadata": meta,
    }


def format_report(r):
    meta = r["metadata"]
    origin = ", ".join(f"{k} {meta[k]}" for k in ("backend", "level", "trial") if k in meta and meta[k] != "none")
    lines = [f"{r['path']}: {r['bytes']:,} bytes ({r['bytes'] / 1024:.1f} KiB)"
             + (f"; trained on {origin}" if origin else "")]
    if r["density"]:
        lines.append(f"  {'layer':<10} {'density':>8}  storage")
        for layer, d in r["density"].items():
            lines.append(f"  {layer:<10} {100 * d:7.2f}%  {r['storage'].get(layer, '?')}")
    if r["overall_density"] is not None:
        lines.append(f"  {'overall':<10} {100 * r['overall_density']:7.2f}%")
    lines.append(f"{r['dataset']} {r['split']}: accuracy {100 * r['accuracy']:.2f} % ({r['count']} images)")
    lines.append(f"throughput: {r['images_per_second']:,.0f} images/s (onnxruntime CPU, batch {r['batch_size']})")
    return "\n".join(lines)


def build_parser(prog="python -m supermask.check"):
    parser = ArgumentParser(
        prog=prog,
        description="Run an exported ONNX model in onnxruntime on a dataset split and print its "
                    "accuracy, file size, density per layer and throughput.")
    parser.add_argument("onnx_file", metavar="ONNX_FILE", help="a file written by python -m supermask.export")
    parser.add_argument("--dataset", default=None, choices=DATASETS, type=lambda v: str(v).strip().lower().replace("-", "_"),
                        help=f"one of: {', '.join(DATASETS)} (default: the one in the file's hparams, else mnist)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset files (default: $SUPERMASK_DATA, the cache, download)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="which split to evaluate (default test)")
    parser.add_argument("--batch-size", type=int, default=verify.BATCH_SIZE,
                        help=f"images per onnxruntime call, also for the throughput (default {verify.BATCH_SIZE})")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed passes over one batch; the median is reported (default 5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime intra-op threads (default: onnxruntime's choice, all cores)")
    return parser


def main(argv=None, prog="python -m supermask.check"):
    args = build_parser(prog).parse_args(argv)
    result = check(args.onnx_file, args.dataset, args.data_dir, args.split, args.batch_size, args.repeats,
                   args.threads)
    print(format_report(result))
    return result


if __name__ == "__main__":
    run_main(main)
