"""Export a Keras model, or a trained run, to one self-contained ONNX file.

``export_model`` strips the model (masks folded into the kernels), builds the graph with
per-tensor dense/sparse and float32/ternary storage, checks it with ``onnx.checker``,
writes it to a temporary file beside ``path``, runs it in onnxruntime against Keras on
random inputs (``verify=True``), and only then renames it to ``path``. Any failure leaves
neither ``path`` nor a temporary file behind. A model with a layer the native graph builder
does not cover (or a subclassed model) takes the standard route (``supermask.export.standard``:
a standard exporter, then the same storage by rewriting its initializers); the file's
``exporter`` metadata says which route wrote it.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import keras
import onnx

from supermask import store
from supermask.models import supermask_layers
from supermask.export import runs, standard
from supermask.export.errors import ExportError, UnsupportedLayerError
from supermask.export.onnx_graph import to_onnx
from supermask.export.reader import to_ops
from supermask.export.sparse import check_choice
from supermask.export.verify import metadata as read_metadata, self_check

EXPORTERS = ("auto", "native", "standard")


@dataclass
class ExportReport:
    """What was written: the file, its size, one dict per kernel layer, the self-check."""

    path: Path
    bytes: int
    layers: list
    metadata: dict = field(default_factory=dict)
    check: object = None  # a verify.Comparison, or None without verification

    def format(self):
        """A short human-readable table of the layers."""
        lines = [f"{self.path} ({self.bytes / 1024:.1f} KiB)",
                 f"  {'layer':<10} {'shape':<18} {'density':>8}  {'storage':<7} {'dtype':<13} {'KiB':>9}"]
        for row in self.layers:
            lines.append(f"  {row['layer']:<10} {str(tuple(row['shape'])):<18} {100 * row['density']:7.2f}%  "
                         f"{row['storage']:<7} {row['dtype']:<13} {row['bytes'] / 1024:9.1f}")
        if self.check is not None:
            lines.append(f"  onnxruntime vs Keras on {self.check.count} random images: max |diff| "
                         f"{self.check.max_abs_diff:.2e}, argmax agreement {100 * self.check.argmax_agreement:.1f}%")
        return "\n".join(lines)


@contextmanager
def deterministic(model):
    """Supermask layers in ``"sampled"`` inference mode compute with their deterministic mask inside.

    The export always folds in the deterministic inference mask (``inference_kernel``), so the
    self-check compares with that; the mode is restored afterwards.
    """
    sampled = [layer for layer in supermask_layers(model).values() if layer.inference_mode == "sampled"]
    for layer in sampled:
        layer.inference_mode = "deterministic"
    try:
        yield
    finally:
        for layer in sampled:
            layer.inference_mode = "sampled"


def export_model(model, path, *, exporter="auto", storage="auto", ternary="auto", ternary_bits=8,
                 ternary_op="dequantize", metadata=None, verify=True):
    """Write ``model`` to the ONNX file ``path``; return an ``ExportReport``.

    Args:
        model: a built Keras model (see ``supermask.export.reader`` for the layers the native
            builder covers).
        exporter: "auto" (the native builder, else the standard route for a layer or model it
            does not cover), "native" (refuse such models) or "standard" (``supermask.export.standard``).
        storage: "auto" (per tensor, whichever is smaller), "dense" or "sparse".
        ternary: "auto" (int8 + scale where a kernel's nonzeros share one magnitude),
            "on" (required for every kernel) or "off".
        ternary_bits: 8 (int8, opset 17), 4 (packed int4, opset 21) or 2 (packed int2, opset 25).
        ternary_op: "dequantize" (DequantizeLinear) or "cast" (Cast + Mul, folded into float
            weights by onnxruntime at load: faster at small batches).
        metadata: extra ``metadata_props`` (values turned into strings).
        verify: compare onnxruntime with Keras on random inputs before keeping the file.
    """
    check_choice("exporter", exporter, EXPORTERS)
    stripped, refusal, proto = None, None, None
    metadata = {"export_backend": keras.backend.backend(), "keras_version": keras.__version__,
                "inference_mask": "deterministic", **(metadata or {})}
    if exporter != "standard":
        try:
            stripped = to_ops(model)
            proto, layers = to_onnx(stripped, storage=storage, ternary=ternary, ternary_bits=ternary_bits,
                                    ternary_op=ternary_op, metadata={**metadata, "exporter": "native"})
        except UnsupportedLayerError as exc:
            if exporter == "native":
                raise
            refusal = str(exc).split(". ")[0]
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"onnx.checker rejects the exported graph ({exc}); this is an exporter bug.") from None
    path = Path(path)
    if proto is None:
        metadata = {**metadata, "exporter": "standard", **({"native_refusal": refusal} if refusal else {})}
        check_destination(path)
        with store.atomic_path(path) as tmp, deterministic(model):
            layers, _, check = standard.write(model, tmp, storage=storage, ternary=ternary, ternary_bits=ternary_bits,
                                              ternary_op=ternary_op, metadata=metadata,
                                              verify_model=model if verify else None)
        return ExportReport(path, path.stat().st_size, layers, read_metadata(path), check)
    check_destination(path)
    check = None
    with store.atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
        if verify:
            with deterministic(model):
                check = self_check(model, tmp, stripped.input_shape)
    return ExportReport(path, path.stat().st_size, layers,
                        {p.key: p.value for p in proto.metadata_props}, check)


def check_destination(path):
    """ExportError unless the ONNX file ``path`` can be written (checked before any work)."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; pass the ONNX file to write, e.g. {path / 'model.onnx'}.")
    try:
        store.check_output_file(path, "the ONNX file")
    except store.StorageError as exc:
        raise ExportError(str(exc)) from None


def export_run(run_dir, path, *, level=None, trial=None, control=False, exporter="auto", storage="auto",
               ternary="auto", ternary_bits=8, ternary_op="dequantize", verify=True):
    """Export the model of a run / level / trial / experiment folder (see ``supermask.export.runs``)."""
    check_destination(path)
    run = runs.resolve(run_dir, level=level, trial=trial, control=control)
    model = runs.load_model(run)
    return export_model(model, path, exporter=exporter, storage=storage, ternary=ternary, ternary_bits=ternary_bits,
                        ternary_op=ternary_op, metadata=run.metadata(), verify=verify)
