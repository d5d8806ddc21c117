"""supermask: lottery tickets and supermasks for Keras 3 (TensorFlow, JAX or PyTorch).

Importing the package registers its Keras layers (masked, supermask), so that any
``model.keras`` it wrote loads with ``keras.saving.load_model`` after ``import supermask``.
Where Keras is not installed (a machine that only checks exported ONNX files with
``python -m supermask.check``, onnxruntime and numpy) the package imports without them.
"""

__version__ = "0.1.0"

try:
    import keras  # noqa: F401
except ImportError:  # onnxruntime-only use: supermask.check
    pass
else:
    from supermask import layers  # noqa: F401  (registers the serialisable layers with Keras)
