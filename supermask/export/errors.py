"""Errors of the ONNX exporter: each names the cause and what to do about it."""

from supermask.errors import SupermaskError


class ExportError(SupermaskError):
    """A model or run folder cannot be exported (nothing is written when this is raised)."""


class UnsupportedLayerError(ExportError):
    """The model holds a layer (or an activation) the exporter has no ONNX form for."""


class NonFiniteWeightsError(ExportError):
    """A kernel or bias holds NaN or infinite values."""


class VerificationError(ExportError):
    """onnxruntime's output differs from Keras's beyond the tolerance."""
