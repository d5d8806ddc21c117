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
"""

from supermask.export.errors import (ExportError, NonFiniteWeightsError, UnsupportedLayerError,
                                     VerificationError)
from supermask.export.exporter import ExportReport, export_model, export_run
from supermask.export.onnx_graph import to_onnx
from supermask.export.sparse import densify, sparsify
from supermask.export.strip import strip

__all__ = ["ExportError", "NonFiniteWeightsError", "UnsupportedLayerError", "VerificationError",
           "ExportReport", "export_model", "export_run", "to_onnx", "densify", "sparsify", "strip"]
