"""Model state as plain numpy dicts: weights, kernels and masks.

* ``Weights``: ``{"<layer>/<variable>": array}`` for the kernel and bias of every
  prunable layer, e.g. ``{"fc1/kernel": (784, 300) float32, "fc1/bias": (300,)}``, and
  the scores of supermask layers (``"fc1/scores"``).
* ``Kernels``: ``{"<layer>": kernel}``, what the pruning math works on.
* ``Masks``: ``{"<layer>": bool array}``, same shapes as the kernels; True = kept. For
  supermask layers, their deterministic inference mask (``inference_mask()``).

These are the only functions that move state between a Keras model and numpy, so
pruning code never touches a backend.
"""

import numpy as np
from keras import ops

from supermask.errors import ConfigError
from supermask.models import prunable_layers


WEIGHT_NAMES = ("kernel", "bias", "scores")


def _variables(layer):
    """``{var_name: variable}`` of a prunable layer: kernel, bias (if any), scores (if any)."""
    return {n: getattr(layer, n) for n in WEIGHT_NAMES if getattr(layer, n, None) is not None}


def get_weights(model):
    """Kernels, biases (and supermask scores) of the prunable layers as ``{"layer/var": float32 array}``."""
    out = {}
    for name, layer in prunable_layers(model).items():
        for var_name, variable in _variables(layer).items():
            out[f"{name}/{var_name}"] = np.asarray(ops.convert_to_numpy(variable))
    return out


def set_weights(model, weights):
    """Load ``{"layer/var": array}`` (as from ``get_weights``) into ``model`` exactly.

    Every key must name an existing kernel, bias or scores variable and match its
    shape; keys that are absent leave the variable unchanged.
    """
    layers = prunable_layers(model)
    for key, value in weights.items():
        layer_name, _, var_name = key.partition("/")
        layer = layers.get(layer_name)
        variable = _variables(layer).get(var_name) if layer is not None else None
        if variable is None:
            valid = ", ".join(k for k in get_weights(model))
            raise ConfigError(f"Unknown weight {key!r} for model '{model.name}'. Valid keys: {valid}.")
        value = np.asarray(value)
        if tuple(value.shape) != tuple(variable.shape):
            raise ConfigError(
                f"Weight {key!r} must have shape {tuple(variable.shape)}. Received shape {value.shape}."
            )
        if not np.all(np.isfinite(value)):
            raise ConfigError(f"Weight {key!r} contains NaN or infinite values.")
        variable.assign(value.astype(np.float32))


def kernels(weights):
    """``{"layer": kernel}`` from a ``Weights`` dict."""
    return {k.split("/")[0]: v for k, v in weights.items() if k.endswith("/kernel")}


def get_masks(model):
    """The (inference) masks of all prunable layers as ``{"layer": bool array}``."""
    return {name: layer.inference_mask() for name, layer in prunable_layers(model).items()}


def set_masks(model, masks):
    """Load ``{"layer": bool/0-1 array}`` into the layers' masks (absent layers unchanged)."""
    layers = prunable_layers(model)
    for name, mask in masks.items():
        if name not in layers:
            raise ConfigError(
                f"Unknown layer {name!r} in masks for model '{model.name}'. "
                f"Valid layers: {', '.join(layers)}."
            )
        if not hasattr(layers[name], "set_mask"):
            raise ConfigError(
                f"Layer {name!r} learns its mask from scores; set its scores with set_weights "
                f"instead. Received masks for: {', '.join(masks)}."
            )
        layers[name].set_mask(mask)

