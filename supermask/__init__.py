"""supermask: lottery tickets and supermasks for Keras 3 (TensorFlow, JAX or PyTorch)."""

__version__ = "0.1.0"
