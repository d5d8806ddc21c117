"""Fold a Keras model into a plain, backend-free list of inference ops (``strip``).

Masks disappear here: every prunable layer contributes its *inference kernel*, the
float32 kernel it computes with at inference (``kernel * mask`` for the masked layers;
frozen kernel x deterministic mask x any rescaling for the supermask layers). Any layer
class with an ``inference_kernel()`` method is accepted, a 2-D kernel as a dense layer
and a 4-D one as a channels_last 2-D convolution, so new prunable layers need no change
here as long as they expose ``inference_kernel``, ``bias``, ``activation`` and (for
convolutions) ``strides`` and ``padding``. Plain ``keras.layers.Dense`` / ``Conv2D`` are
accepted too, so a dense baseline exports the same way.

Supported: a ``keras.Sequential`` (nested Sequential blocks are expanded) of those layers, ``MaxPooling2D``, ``Flatten`` and
ReLU / linear activations (as a layer's ``activation``, an ``Activation`` layer or a plain
``ReLU`` layer). Anything else raises ``UnsupportedLayerError`` naming the layer; NaN or
infinite weights raise ``NonFiniteWeightsError``.
"""

from dataclasses import dataclass

import keras
import numpy as np

from supermask.export.errors import ExportError, NonFiniteWeightsError, UnsupportedLayerError

SUPPORTED = ("layers with an inference kernel (MaskedDense, MaskedConv2D, SupermaskDense, "
             "SupermaskConv2D), keras Dense and Conv2D, MaxPooling2D, Flatten, and relu/linear "
             "activations")
ACTIVATIONS = ("relu", "linear")


@dataclass(frozen=True, eq=False)
class Dense:
    """``activation(x @ kernel + bias)`` on a flat input; kernel (in, out)."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str


@dataclass(frozen=True, eq=False)
class Conv2D:
    """channels_last convolution; kernel (kh, kw, in, out); padding "valid" or "same"."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str
    strides: tuple
    padding: str


@dataclass(frozen=True, eq=False)
class MaxPool2D:
    name: str
    pool_size: tuple
    strides: tuple
    padding: str


@dataclass(frozen=True, eq=False)
class Flatten:
    """Keras's Flatten: row-major over (H, W, C) of a channels_last tensor."""

    name: str


@dataclass(frozen=True, eq=False)
class ReLU:
    name: str


@dataclass(frozen=True, eq=False)
class Stripped:
    """A model as plain ops. ``input_shape`` excludes the batch axis, e.g. (28, 28, 1)."""

    name: str
    input_name: str
    input_shape: tuple
    ops: tuple

    def kernel_ops(self):
        """The ops that carry a kernel (Dense and Conv2D), in order."""
        return [op for op in self.ops if isinstance(op, (Dense, Conv2D))]

    def densities(self):
        """``{layer: fraction of nonzero kernel entries}`` of the exported kernels."""
        return {op.name: float(np.count_nonzero(op.kernel)) / op.kernel.size for op in self.kernel_ops()}


def strip(model):
    """Turn ``model`` (a built ``keras.Sequential``, which may nest Sequential blocks) into a
    ``Stripped`` list of plain ops."""
    if not isinstance(model, keras.Sequential):
        raise ExportError(
            f"The sparse ONNX exporter handles keras.Sequential models (nested ones too). Received "
            f"{type(model).__name__} '{model.name}': fold its masks into plain layers with "
            "supermask.convert.strip(model) and export that with Keras's model.export(path, format='onnx').")
    if not model.built or not model.inputs:
        raise ExportError(f"Model '{model.name}' has not been built; give it an Input (or call it once) "
                          "so its input shape is known.")
    shape = tuple(model.inputs[0].shape)[1:]
    if any(d is None for d in shape):
        raise ExportError(f"Model '{model.name}' has an input of unknown size {shape}; the exporter "
                          "needs a fixed image size such as (28, 28, 1).")
    ops = tuple(op for name, layer in _flat_layers(model) for op in _layer_ops(layer, name))
    if not any(isinstance(op, (Dense, Conv2D)) for op in ops):
        raise ExportError(f"Model '{model.name}' has no dense or convolution layer to export.")
    input_name = getattr(model.inputs[0], "name", None) or "input"
    return Stripped(model.name, str(input_name), tuple(int(d) for d in shape), ops)


def _flat_layers(model, prefix=""):
    """``(key, layer)`` of a Sequential model with nested Sequential blocks expanded, in order;
    keys as ``supermask.convert.walk`` spells them ("block/dense")."""
    for layer in model.layers:
        if isinstance(layer, keras.Sequential):
            yield from _flat_layers(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer


def _layer_ops(layer, name):
    if isinstance(layer, keras.layers.InputLayer):
        return []
    if hasattr(layer, "inference_kernel") or isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
        return _kernel_ops(layer, name)
    if isinstance(layer, keras.layers.Flatten):
        _check_channels_last(layer)
        return [Flatten(name)]
    if isinstance(layer, keras.layers.MaxPooling2D):
        _check_channels_last(layer)
        return [MaxPool2D(name, _pair(layer.pool_size), _pair(layer.strides), _padding(layer))]
    if isinstance(layer, keras.layers.ReLU):
        if layer.max_value is not None or layer.negative_slope or layer.threshold:
            raise _unsupported(layer, "a ReLU with max_value, negative_slope or threshold")
        return [ReLU(name)]
    if isinstance(layer, keras.layers.Activation):
        return [ReLU(name)] if _activation(layer) == "relu" else []
    raise _unsupported(layer)


def _kernel_ops(layer, name):
    if getattr(layer, "quantization_mode", None):
        raise _unsupported(layer, f"a {layer.quantization_mode}-quantized layer")
    if hasattr(layer, "inference_kernel"):
        kernel = np.asarray(layer.inference_kernel(), dtype=np.float32)
    else:
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)
    bias = getattr(layer, "bias", None)
    bias = None if bias is None else np.asarray(keras.ops.convert_to_numpy(bias), dtype=np.float32)
    _check_finite(name, "kernel", kernel)
    if bias is not None:
        _check_finite(name, "bias", bias)
    activation = _activation(layer)
    if kernel.ndim == 2:
        return [Dense(name, kernel, bias, activation)]
    if kernel.ndim == 4:
        _check_channels_last(layer)
        if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1) or getattr(layer, "groups", 1) != 1:
            raise _unsupported(layer, "a dilated or grouped convolution")
        return [Conv2D(name, kernel, bias, activation, _pair(layer.strides), _padding(layer))]
    raise _unsupported(layer, f"a layer with a rank-{kernel.ndim} kernel {kernel.shape}")


def _activation(layer):
    fn = getattr(layer, "activation", None)
    name = "linear" if fn is None else keras.activations.serialize(fn)
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise _unsupported(layer, f"activation {name!r} (supported: {', '.join(ACTIVATIONS)})")
    return name


def _check_finite(name, what, array):
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise NonFiniteWeightsError(
            f"Layer '{name}' has {bad} non-finite (NaN or infinite) values in its {what}, so its "
            "export would compute garbage. The run probably diverged: export an earlier level or "
            "retrain with a lower learning rate.")


def _check_channels_last(layer):
    data_format = getattr(layer, "data_format", None) or "channels_last"
    if data_format != "channels_last":
        raise _unsupported(layer, f"data_format={data_format!r} (only channels_last)")


def _padding(layer):
    padding = str(layer.padding).lower()
    if padding not in ("valid", "same"):
        raise _unsupported(layer, f"padding={padding!r}")
    return padding


def _pair(value):
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    return tuple(int(v) for v in value)


def _unsupported(layer, what=None):
    detail = f": {what}" if what else ""
    return UnsupportedLayerError(
        f"Unsupported layer '{layer.name}' ({type(layer).__name__}){detail}. The ONNX exporter handles "
        f"{SUPPORTED}. Remove the layer (e.g. Dropout / BatchNormalization) or fold it into the "
        "neighbouring kernel before exporting.")
