"""Fold a Keras model into a plain, backend-free list of inference ops (``to_ops``).

Masks disappear here: every prunable layer contributes its *inference kernel*, the
float32 kernel it computes with at inference (``kernel * mask`` for the masked layers;
frozen kernel x deterministic mask x any rescaling for the supermask layers). Any layer
class with an ``inference_kernel()`` method is accepted, a 2-D kernel as a dense layer
and a 4-D one as a channels_last 2-D convolution, so new prunable layers need no change
here as long as they expose ``inference_kernel``, ``bias``, ``activation`` and (for
convolutions) ``strides`` and ``padding``. Plain ``keras.layers.Dense`` / ``Conv2D`` are
accepted too, so a dense baseline exports the same way.

Supported: ``keras.Sequential`` and Functional models (nested ones expand in place) of those
layers, ``BatchNormalization`` (inference statistics; folded into a preceding linear
convolution or dense layer read by nothing else, else a per-channel scale and offset),
``Add`` (residual connections), ``MaxPooling2D``, ``AveragePooling2D`` ("valid"),
``GlobalAveragePooling2D``, ``Flatten``, ``Dropout`` (the identity) and ReLU / linear
activations (as a layer's ``activation``, an ``Activation`` layer or a plain ``ReLU`` layer).
Anything else raises ``UnsupportedLayerError`` naming the layer; NaN or infinite weights
raise ``NonFiniteWeightsError``. The graph is read from Keras's functional nodes
(``Layer._inbound_nodes``: the one call whose inputs this graph computes).
"""

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np

from supermask.convert import is_graph
from supermask.export.errors import ExportError, NonFiniteWeightsError, UnsupportedLayerError

SUPPORTED = ("layers with an inference kernel (MaskedDense, MaskedConv2D, SupermaskDense, "
             "SupermaskConv2D), keras Dense and Conv2D, BatchNormalization, Add, MaxPooling2D, "
             "AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout, and relu/linear activations")
ACTIVATIONS = ("relu", "linear")


@dataclass(frozen=True, eq=False)
class Dense:
    """``activation(x @ kernel + bias)`` on a flat input; kernel (in, out)."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str
    inputs: tuple = ()  # the names of the ops whose outputs it takes; () = the previous op's


@dataclass(frozen=True, eq=False)
class Conv2D:
    """channels_last convolution; kernel (kh, kw, in, out); padding "valid" or "same"."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray | None
    activation: str
    strides: tuple
    padding: str
    inputs: tuple = ()


@dataclass(frozen=True, eq=False)
class Pool2D:
    """A 2-D window pool of a channels_last tensor."""

    name: str
    pool_size: tuple
    strides: tuple
    padding: str
    inputs: tuple = ()


class MaxPool2D(Pool2D):
    """Keras's MaxPooling2D."""


class AvgPool2D(Pool2D):
    """Keras's AveragePooling2D ("valid" padding only: "same" averages over the valid pixels)."""


@dataclass(frozen=True, eq=False)
class GlobalAvgPool:
    """Mean over H and W of a channels_last tensor: (H, W, C) -> (C,)."""

    name: str
    inputs: tuple = ()


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Inference BatchNormalization over the last axis: ``x * scale + offset`` per channel."""

    name: str
    scale: np.ndarray
    offset: np.ndarray
    inputs: tuple = ()


@dataclass(frozen=True, eq=False)
class Add:
    """The element-wise sum of its inputs (a residual connection)."""

    name: str
    inputs: tuple = ()


@dataclass(frozen=True, eq=False)
class Flatten:
    """Keras's Flatten: row-major over (H, W, C) of a channels_last tensor."""

    name: str
    inputs: tuple = ()


@dataclass(frozen=True, eq=False)
class ReLU:
    name: str
    inputs: tuple = ()


@dataclass(frozen=True, eq=False)
class Stripped:
    """A model as plain ops in an order that computes every input before its use. ``input_shape``
    excludes the batch axis, e.g. (28, 28, 1). An op's output is called by its ``name``; its
    ``inputs`` name the ops it reads (``input_name`` for the model's input; () for the
    previous op's output); the last op's output is the model's."""

    name: str
    input_name: str
    input_shape: tuple
    ops: tuple
    output: str = ""  # the op whose output is the model's ("": the last one)

    def kernel_ops(self):
        """The ops that carry a kernel (Dense and Conv2D), in order."""
        return [op for op in self.ops if isinstance(op, (Dense, Conv2D))]

    def densities(self):
        """``{layer: fraction of nonzero kernel entries}`` of the exported kernels."""
        return {op.name: float(np.count_nonzero(op.kernel)) / op.kernel.size for op in self.kernel_ops()}


def to_ops(model):
    """Turn ``model`` (a built ``keras.Sequential`` or Functional model, which may nest Sequential
    and Functional blocks) into a ``Stripped`` graph of plain ops, each BatchNormalization that
    follows a convolution or dense layer folded into its kernel and bias."""
    if not is_graph(model):
        raise ExportError(
            f"The ONNX exporter handles Sequential and Functional models (nested ones too). Received "
            f"{type(model).__name__} '{model.name}' (a subclassed model): fold its masks into plain layers with "
            "supermask.convert.strip(model) and export that with Keras's model.export(path, format='onnx').")
    if not model.built or not model.inputs:
        raise ExportError(f"Model '{model.name}' has not been built; give it an Input (or call it once) "
                          "so its input shape is known.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          "the exporter handles one of each.")
    shape = tuple(model.inputs[0].shape)[1:]
    if any(d is None for d in shape):
        raise ExportError(f"Model '{model.name}' has an input of unknown size {shape}; the exporter "
                          "needs a fixed image size such as (28, 28, 1).")
    input_name = str(getattr(model.inputs[0], "name", None) or "input")
    ops, output = _model_ops(model, input_name, "")
    if output == input_name or not any(isinstance(op, (Dense, Conv2D)) for op in ops):
        raise ExportError(f"Model '{model.name}' has no dense or convolution layer to export.")
    ops = _fold_batchnorm(_resolve_inputs(ops, input_name))
    renamed = {op.name for op in ops}
    output = output if output in renamed else ops[-1].name  # a folded BatchNorm ended the model
    return Stripped(model.name, input_name, tuple(int(d) for d in shape), tuple(ops), output)


def _model_ops(model, input_name, prefix):
    """``(ops, output name)`` of a Sequential or Functional ``model`` reading the tensor ``input_name``;
    op names are layer keys (``supermask.convert.walk``: "block/conv")."""
    if isinstance(model, keras.Sequential):
        ops, current = [], input_name
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            layer_ops, current = _call_ops(layer, f"{prefix}{layer.name}", [current])
            ops += layer_ops
        return ops, current
    names = {id(model.inputs[0]): input_name}  # KerasTensor -> the op name that computes it
    ops = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        node = next((n for n in layer._inbound_nodes  # the call of this graph: its inputs are known
                     if n.input_tensors and all(id(t) in names for t in n.input_tensors)), None)
        if node is None:
            raise ExportError(f"Cannot follow the graph of '{model.name}' to layer '{layer.name}'.")
        layer_ops, output = _call_ops(layer, f"{prefix}{layer.name}", [names[id(t)] for t in node.input_tensors])
        ops += layer_ops
        for tensor in node.output_tensors:
            names[id(tensor)] = output
    return ops, names[id(model.outputs[0])]


def _call_ops(layer, key, inputs):
    """``(ops, output name)`` of one layer (a nested model expands) called on the tensors ``inputs``."""
    if is_graph(layer):
        if len(inputs) != 1:
            raise _unsupported(layer, "a nested model with several inputs")
        return _model_ops(layer, inputs[0], f"{key}/")
    if isinstance(layer, keras.layers.Add):
        return [Add(key, tuple(inputs))], key
    if len(inputs) != 1:
        raise _unsupported(layer, f"a layer with {len(inputs)} inputs")
    ops = _layer_ops(layer, key)
    if not ops:  # a pass-through (linear Activation)
        return [], inputs[0]
    ops = [dataclasses.replace(ops[0], inputs=(inputs[0],)), *ops[1:]]
    return ops, ops[-1].name


def _resolve_inputs(ops, input_name):
    """Every op with explicit inputs (its predecessor's name where it had none)."""
    out, previous = [], input_name
    for op in ops:
        op = op if op.inputs else dataclasses.replace(op, inputs=(previous,))
        out.append(op)
        previous = op.name
    return out


def _fold_batchnorm(ops):
    """Fold each BatchNorm whose input is a linear Dense / Conv2D read by nothing else into that
    layer: ``kernel * scale`` per output channel, ``bias * scale + offset``. Masked-off (zero)
    kernel entries stay zero, so the export keeps the ticket's sparsity."""
    readers = {}
    for op in ops:
        for name in op.inputs:
            readers[name] = readers.get(name, 0) + 1
    by_name = {op.name: op for op in ops}
    folded, renamed = {}, {}
    for op in ops:
        if not isinstance(op, BatchNorm):
            continue
        source = by_name.get(op.inputs[0])
        if (isinstance(source, (Dense, Conv2D)) and source.activation == "linear"
                and readers.get(source.name) == 1 and source.name not in folded):
            bias = source.bias if source.bias is not None else np.zeros(op.scale.shape, np.float32)
            folded[source.name] = dataclasses.replace(
                source, kernel=(source.kernel * op.scale).astype(np.float32),
                bias=(bias * op.scale + op.offset).astype(np.float32))
            renamed[op.name] = source.name
    out = []
    for op in ops:
        if op.name in renamed:
            continue
        op = folded.get(op.name, op)
        out.append(dataclasses.replace(op, inputs=tuple(renamed.get(n, n) for n in op.inputs)))
    return out


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
    if isinstance(layer, keras.layers.AveragePooling2D):
        _check_channels_last(layer)
        if _padding(layer) != "valid":
            raise _unsupported(layer, "'same' padding of an average pool")
        return [AvgPool2D(name, _pair(layer.pool_size), _pair(layer.strides), "valid")]
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        _check_channels_last(layer)
        if layer.keepdims:
            raise _unsupported(layer, "keepdims=True")
        return [GlobalAvgPool(name)]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [_batchnorm(layer, name)]
    if isinstance(layer, keras.layers.Dropout):
        return []  # the identity at inference
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


def _batchnorm(layer, name):
    """A BatchNormalization layer at inference as a per-channel ``BatchNorm(scale, offset)``."""
    rank = getattr(layer.input_spec, "ndim", None)
    if not isinstance(layer.axis, int) or layer.axis not in (-1, (rank or 0) - 1):
        raise _unsupported(layer, f"normalization over axis {layer.axis} (only the last, channels_last)")
    if getattr(layer, "renorm", False):
        raise _unsupported(layer, "batch renormalization")

    def value(variable, default):
        return default if variable is None else np.asarray(keras.ops.convert_to_numpy(variable), np.float64)

    mean, variance = value(layer.moving_mean, 0.0), value(layer.moving_variance, 1.0)
    channels = np.shape(mean)[0]
    gamma = value(getattr(layer, "gamma", None), np.ones(channels))
    beta = value(getattr(layer, "beta", None), np.zeros(channels))
    scale = gamma / np.sqrt(variance + float(layer.epsilon))
    offset = beta - mean * scale
    for what, array in (("scale", scale), ("offset", offset)):
        _check_finite(name, f"batch normalization {what}", array)
    return BatchNorm(name, scale.astype(np.float32), offset.astype(np.float32))


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
        f"{SUPPORTED}. Remove the layer or fold it into the neighbouring kernel before exporting, or export "
        "supermask.convert.strip(model) with Keras's model.export(path, format='onnx').")
