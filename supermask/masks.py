"""Model state as plain numpy dicts: weights, kernels and masks.

* ``Weights``: ``{"<layer>/<variable>": array}`` for every weight of the model: the
  kernel and bias of every prunable layer, e.g. ``{"fc1/kernel": (784, 300) float32,
  "fc1/bias": (300,)}``, the scores of supermask layers (``"fc1/scores"``), and the
  weights of every other layer (``"block1/bn/gamma"``, ``"block1/bn/moving_mean"``...),
  so that resetting a network to its initial weights resets all of it. Masks and random
  seed states are not weights. ``<layer>`` is the layer's key (``supermask.convert.walk``):
  names from the top model down, joined by "/".
* ``Kernels``: ``{"<layer>": kernel}``, what the pruning math works on.
* ``Masks``: ``{"<layer>": bool array}``, same shapes as the kernels; True = kept. For
  supermask layers, their deterministic inference mask (``inference_mask()``).

These are the only functions that move state between a Keras model and numpy, so
pruning code never touches a backend.
"""

import numpy as np
from keras import ops

from supermask.convert import own_weights, prunable_layers, walk
from supermask.errors import ConfigError


def _variables(model):
    """``{"layer/var": variable}`` of every weight of ``model`` but the masks (see module docstring)."""
    out = {}
    top = [("", model)] + walk(model)
    for key, layer in top:
        mask = getattr(layer, "mask", None) if hasattr(layer, "set_mask") else None
        for variable in own_weights(layer):
            if variable is mask:
                continue
            name = f"{key}/{variable.name}" if key else variable.name
            if name in out:
                raise ConfigError(f"Two weights of model '{model.name}' are both called {name!r}; give the "
                                  "variables of that layer distinct names.")
            out[name] = variable
    return out


def weight_variables(model):
    """``{"layer/var": variable}`` of every weight of ``model`` but the masks (the keys of ``get_weights``)."""
    return _variables(model)


def get_weights(model):
    """Every weight of ``model`` but the masks, as ``{"layer/var": array}`` (float32 for float weights)."""
    return {key: np.asarray(ops.convert_to_numpy(v)) for key, v in _variables(model).items()}


def set_weights(model, weights):
    """Load ``{"layer/var": array}`` (as from ``get_weights``) into ``model`` exactly.

    Every key must name an existing weight and match its shape; keys that are absent
    leave the variable unchanged.
    """
    variables = _variables(model)
    for key, value in weights.items():
        variable = variables.get(key)
        if variable is None:
            raise ConfigError(f"Unknown weight {key!r} for model '{model.name}'. Valid keys: {', '.join(variables)}.")
        value = np.asarray(value)
        if tuple(value.shape) != tuple(variable.shape):
            raise ConfigError(
                f"Weight {key!r} must have shape {tuple(variable.shape)}. Received shape {value.shape}."
            )
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise ConfigError(f"Weight {key!r} contains NaN or infinite values.")
        variable.assign(value.astype(np.dtype(variable.dtype)))


def kernels(weights, layers=None):
    """``{"layer": kernel}`` from a ``Weights`` dict: every "<layer>/kernel", or only the
    layers named in ``layers`` (e.g. a ``Masks`` dict: the prunable ones)."""
    out = {k.rpartition("/")[0]: v for k, v in weights.items() if k.endswith("/kernel")}
    return out if layers is None else {name: out[name] for name in layers}


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

