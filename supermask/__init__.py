"""supermask: lottery tickets and supermasks for Keras 3 (TensorFlow, JAX or PyTorch).

Importing the package registers its Keras layers (masked, supermask), so that any
``model.keras`` it wrote loads with ``keras.saving.load_model`` after ``import supermask``.
The registration happens when Keras itself is imported (now, if it already is): a machine
that only checks exported ONNX files (``python -m supermask.check``: onnxruntime and numpy)
never loads Keras, nor needs it installed.
"""

import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"


class _RegisterLayersWithKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``keras`` is first imported, it lets the real finder load it and
    then imports ``supermask.layers`` (which registers the layers), once."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            importlib.import_module("supermask.layers")

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    importlib.import_module("supermask.layers")
elif not any(isinstance(finder, _RegisterLayersWithKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterLayersWithKeras())

# The Keras-native verbs, ``supermask.prune(model, ...)`` and friends, are looked up on first use: importing
# them here would load Keras with ``import supermask`` (``supermask.check`` runs where Keras is not installed).
_VERBS = {**dict.fromkeys(("prune", "rewind", "sparsity", "strip", "snapshot", "masked"), "supermask.tickets"),
          "imp": "supermask.custom_training",
          **dict.fromkeys(("GradualPruning", "PolynomialDecay", "ConstantSparsity"), "supermask.callbacks")}
__all__ = ["__version__", *_VERBS]


def __getattr__(name):
    if name in _VERBS:
        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'supermask' has no attribute {name!r}")
