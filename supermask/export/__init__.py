"""Ship a winning ticket or a supermask: export a trained model to one ONNX file.

    from supermask.export import export_model, export_run
    report = export_model(model, "ticket.onnx")                  # storage/ternary chosen per tensor
    report = export_run("runs/lottery/<hash>", "ticket.onnx", level=3)

or ``python -m supermask.export RUN_DIR --out ticket.onnx`` and
``python -m supermask.check ticket.onnx --dataset mnist``.

Modules: ``strip`` (model -> plain ops with the masks folded in), ``sparse`` (dense / sparse /
ternary storage of a tensor), ``onnx_graph`` (the ONNX graph and its metadata), ``verify``
(onnxruntime: logits, comparison with Keras, accuracy, throughput), ``runs`` (which folder
holds the model to export), ``exporter`` (the two entry points above).

Names are imported lazily, so ``supermask.check`` (onnxruntime only) never imports Keras.
"""

import importlib

_EXPORTS = {
    "ExportError": "errors", "NonFiniteWeightsError": "errors", "UnsupportedLayerError": "errors",
    "VerificationError": "errors", "ExportReport": "exporter", "export_model": "exporter",
    "export_run": "exporter", "to_onnx": "onnx_graph", "densify": "sparse", "sparsify": "sparse",
    "strip": "strip",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"supermask.export.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'supermask.export' has no attribute {name!r}")
