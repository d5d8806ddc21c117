"""Ship a winning ticket or a supermask: export a trained model to one ONNX file.

    from supermask.export import export_model, export_run
    report = export_model(model, "ticket.onnx")                  # storage/ternary chosen per tensor
    report = export_run("runs/lottery/<hash>", "ticket.onnx", level=3)

or ``python -m supermask.export RUN_DIR --out ticket.onnx`` and
``python -m supermask.check ticket.onnx --dataset mnist``.

``strip`` is ``supermask.convert.strip`` (a Keras model with the masks folded into plain layers).

Modules: ``ops`` (the plain ops), ``reader`` (a Keras model -> plain ops with the masks folded in,
``to_ops``), ``emit`` (each op's ONNX nodes), ``onnx_graph`` (the native ONNX graph and its
metadata), ``sparse`` (dense / sparse / ternary storage of a tensor), ``standard`` (the standard
route: a model the native builder does not cover, through tf2onnx / torch.onnx / jax2onnx;
``tf_worker`` runs tf2onnx in a TensorFlow process), ``rewrite`` (that file's kernels into sparse /
ternary storage), ``verify`` (onnxruntime: logits, comparison with Keras, accuracy, throughput),
``runs`` (which folder holds the model to export), ``exporter`` (the two entry points above).

Names are imported lazily: ``supermask.check`` computes with onnxruntime alone.
"""

import importlib

_EXPORTS = {
    "ExportError": "errors", "NonFiniteWeightsError": "errors", "UnsupportedLayerError": "errors",
    "VerificationError": "errors", "ExportReport": "exporter", "export_model": "exporter",
    "export_run": "exporter", "to_onnx": "onnx_graph", "densify": "sparse", "sparsify": "sparse",
    "to_ops": "reader",
}
__all__ = sorted([*_EXPORTS, "strip"])


def __getattr__(name):
    if name == "strip":  # the one strip: a Keras model back to plain layers (not a module of this package)
        from supermask.convert import strip

        return strip
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"supermask.export.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'supermask.export' has no attribute {name!r}")
