"""``python -m supermask.export RUN_DIR --out ticket.onnx``: export a trained run to ONNX.

    KERAS_BACKEND=jax python -m supermask.export runs/lottery/<hash> --level 3 --out ticket.onnx

RUN_DIR is a run folder (``python -m supermask.train --out``), or a lottery level, trial or
experiment folder; ``--trial`` and ``--level`` pick within the last two. The model may have
been trained on any backend; the export runs on the active one.
"""


from supermask.cli import ArgumentParser, run_main

from supermask.export.exporter import EXPORTERS, export_run
from supermask.export.sparse import STORAGES, TERNARY, TERNARY_BITS, TERNARY_OPS


def build_parser(prog=None):
    parser = ArgumentParser(
        prog=prog or "python -m supermask.export",
        description="Export a trained run (masks folded into the weights) to a self-contained ONNX "
                    "file that onnxruntime runs. Input: NHWC float32 images; output: logits.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run folder (python -m supermask.train --out), or a lottery level, "
                             "trial or experiment folder")
    parser.add_argument("--out", required=True, help="the ONNX file to write, e.g. ticket.onnx")
    parser.add_argument("--level", type=int, default=None,
                        help="lottery level to export from a trial/experiment folder (default: the last finished)")
    parser.add_argument("--trial", type=int, default=None,
                        help="trial seed to export from an experiment folder (default: the lowest)")
    parser.add_argument("--control", action="store_true",
                        help="export the level's random-reinit control instead of the ticket")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="native: supermask's graph builder (the common layers; refuses others), standard: "
                             "a standard exporter (tf2onnx, torch.onnx) with the kernels then rewritten to the "
                             "same sparse/ternary storage, auto: native where it covers the model, else "
                             "standard (default auto)")
    parser.add_argument("--storage", choices=STORAGES, default="auto",
                        help="weight tensors as dense initializers, sparse_initializers (nonzero values "
                             "+ int64 indices), or auto: whichever is smaller per tensor, i.e. sparse "
                             "below ~1/3 density for float32 (default auto)")
    parser.add_argument("--ternary", choices=TERNARY, default="auto",
                        help="store kernels as {-1,0,+1} (int8, or see --ternary-bits) + a per-layer float32 scale "
                             "(DequantizeLinear): auto = where every nonzero of a kernel has the same "
                             "magnitude (signed-constant weights), on = required for every kernel, "
                             "off = never (default auto)")
    parser.add_argument("--ternary-bits", type=int, choices=TERNARY_BITS, default=8,
                        help="bits per ternary entry: 8 (int8, opset 17, dense or sparse), 4 (packed int4, "
                             "opset 21) or 2 (packed int2, opset 25: 1/16 of float32; needs an onnxruntime "
                             "with opset-25 DequantizeLinear, e.g. 1.32); 4 and 2 are always dense (default 8)")
    parser.add_argument("--ternary-op", choices=TERNARY_OPS, default="dequantize",
                        help="how the graph rebuilds float weights from ternary ones: dequantize "
                             "(DequantizeLinear, run at every call) or cast (Cast + Mul, which onnxruntime "
                             "folds into float32 weights at load: 2x-8x faster at batch 1, same file size) "
                             "(default dequantize)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the check that onnxruntime reproduces the Keras logits on random "
                             "images before the file is kept")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser


def main(argv=None, prog=None):
    args = build_parser(prog).parse_args(argv)
    report = export_run(args.run_dir, args.out, level=args.level, trial=args.trial, control=args.control,
                        exporter=args.exporter, storage=args.storage, ternary=args.ternary,
                        ternary_bits=args.ternary_bits, ternary_op=args.ternary_op, verify=args.verify)
    if not args.quiet:
        print(report.format())
    return report


if __name__ == "__main__":
    run_main(main)
