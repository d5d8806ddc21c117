"""Read a Keras model into a plain, backend-free graph of inference ops (``to_ops``).

Masks disappear here: every prunable layer contributes its *inference kernel*, the
float32 kernel it computes with at inference (``kernel * mask`` for the masked layers;
frozen kernel x deterministic mask x any rescaling for the supermask layers). Any layer
class with an ``inference_kernel()`` method is accepted, a 2-D kernel as a dense layer
and a 3-D / 4-D one as a channels_last 1-D / 2-D convolution, so new prunable layers need
no change here as long as they expose ``inference_kernel``, ``bias``, ``activation`` and (for
convolutions) ``strides``, ``padding``, ``dilation_rate`` and ``groups``. Plain
``keras.layers.Dense`` / ``Conv1D`` / ``Conv2D`` are accepted too.

Native layers (``SUPPORTED``): those, ``BatchNormalization`` (inference statistics; folded into a
preceding linear convolution or dense layer read by nothing else, else a per-channel scale and
offset), the merges ``Add`` / ``Subtract`` / ``Multiply`` / ``Average`` / ``Maximum`` / ``Minimum``
and ``Concatenate``, max / average pooling 1-D and 2-D, global max / average pooling 1-D and 2-D,
``Flatten``, ``Reshape``, ``ZeroPadding1D`` / ``2D``, dropout and noise layers (the identity at
inference), and the activations of ``ops.ACTIVATIONS`` (a layer's ``activation=``, an ``Activation``
layer, ``ReLU`` with any arguments, ``LeakyReLU``, ``ELU``, ``Softmax``, ``PReLU``). Anything else
raises ``UnsupportedLayerError`` naming the layer (``export_model`` then takes the standard
route, ``supermask.export.standard``); NaN or infinite weights raise ``NonFiniteWeightsError``.
The graph is read from Keras's functional nodes (``Layer._inbound_nodes``: the one call whose
inputs this graph computes).
"""

import dataclasses

import keras
import numpy as np

from supermask.convert import is_graph
from supermask.export import ops as O
from supermask.export.errors import ExportError, NonFiniteWeightsError, UnsupportedLayerError

SUPPORTED = ("Dense / Conv1D / Conv2D and their masked and supermask forms, BatchNormalization, Add, "
             "Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Max/AveragePooling1D/2D, "
             "GlobalMax/GlobalAveragePooling1D/2D, Flatten, Reshape, ZeroPadding1D/2D, Dropout, "
             f"ReLU, LeakyReLU, ELU, Softmax, PReLU and the activations {', '.join(O.ACTIVATIONS)}")
_MERGES = {keras.layers.Add: "add", keras.layers.Subtract: "subtract", keras.layers.Multiply: "multiply",
           keras.layers.Average: "average", keras.layers.Maximum: "maximum", keras.layers.Minimum: "minimum"}
_POOLS = {keras.layers.MaxPooling1D: "max", keras.layers.MaxPooling2D: "max",
          keras.layers.AveragePooling1D: "avg", keras.layers.AveragePooling2D: "avg"}
_GLOBAL_POOLS = {keras.layers.GlobalMaxPooling1D: "max", keras.layers.GlobalMaxPooling2D: "max",
                 keras.layers.GlobalAveragePooling1D: "avg", keras.layers.GlobalAveragePooling2D: "avg"}
# The identity at inference.
_IDENTITY = tuple(getattr(keras.layers, name) for name in (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "Identity", "ActivityRegularization") if hasattr(keras.layers, name))


def to_ops(model):
    """Turn ``model`` (a built ``keras.Sequential`` or Functional model, which may nest Sequential
    and Functional blocks) into a ``Stripped`` graph of plain ops, each BatchNormalization that
    follows a convolution or dense layer folded into its kernel and bias."""
    if not is_graph(model):
        raise UnsupportedLayerError(
            f"{type(model).__name__} '{model.name}' is a subclassed model; the native ONNX graph builder handles "
            "Sequential and Functional models (nested ones too). Export it with exporter='auto' or 'standard' "
            "(supermask.convert.strip(model), then a standard ONNX exporter).")
    if not model.built or not model.inputs:
        raise ExportError(f"Model '{model.name}' has not been built; give it an Input (or call it once) "
                          "so its input shape is known.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          "the exporter handles one of each.")
    shape = input_shape(model)
    input_name = str(getattr(model.inputs[0], "name", None) or "input")
    ops, output = _model_ops(model, input_name, "")
    if output == input_name or not any(isinstance(op, O.KERNEL_OPS) for op in ops):
        raise ExportError(f"Model '{model.name}' has no dense or convolution layer to export.")
    ops = _fold_batchnorm(_resolve_inputs(ops, input_name))
    renamed = {op.name for op in ops}
    output = output if output in renamed else ops[-1].name  # a folded BatchNorm ended the model
    return O.Stripped(model.name, input_name, shape, tuple(ops), output)


def input_shape(model):
    """The model's input shape without the batch axis; ExportError if a size is unknown."""
    shape = tuple(model.inputs[0].shape)[1:]
    if any(d is None for d in shape):
        raise ExportError(f"Model '{model.name}' has an input of unknown size {shape}; the exporter "
                          "needs a fixed size such as (28, 28, 1).")
    return tuple(int(d) for d in shape)


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
    if type(layer) in _MERGES:
        return [O.Merge(key, tuple(inputs), _MERGES[type(layer)])], key
    if isinstance(layer, keras.layers.Concatenate):
        return [O.Concat(key, tuple(inputs), int(layer.axis))], key
    if len(inputs) != 1:
        raise _unsupported(layer, f"a layer with {len(inputs)} inputs")
    ops = _layer_ops(layer, key)
    if not ops:  # a pass-through (Dropout, a linear Activation)
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
    """Fold each BatchNorm whose input is a linear Dense / Conv read by nothing else into that
    layer: ``kernel * scale`` per output channel, ``bias * scale + offset``. Masked-off (zero)
    kernel entries stay zero, so the export keeps the ticket's sparsity."""
    readers = {}
    for op in ops:
        for name in op.inputs:
            readers[name] = readers.get(name, 0) + 1
    by_name = {op.name: op for op in ops}
    folded, renamed = {}, {}
    for op in ops:
        if not isinstance(op, O.BatchNorm):
            continue
        source = by_name.get(op.inputs[0])
        if (isinstance(source, O.KERNEL_OPS) and source.activation == O.LINEAR
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
    if hasattr(layer, "inference_kernel") or isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D,
                                                                keras.layers.Conv2D)):
        return _kernel_ops(layer, name)
    if isinstance(layer, _IDENTITY):
        return []
    if isinstance(layer, keras.layers.Flatten):
        _check_channels_last(layer)
        return [O.Flatten(name)]
    if isinstance(layer, keras.layers.Reshape):
        return [O.Reshape(name, shape=tuple(int(d) for d in layer.target_shape))]
    if type(layer) in _POOLS:
        _check_channels_last(layer)
        kind, padding = _POOLS[type(layer)], _padding(layer)
        edge_pad = kind == "avg" and padding == "same" and keras.backend.backend() == "torch"
        return [O.Pool(name, kind=kind, pool_size=_tuple(layer.pool_size),
                       strides=_tuple(layer.strides or layer.pool_size), padding=padding, edge_pad=edge_pad)]
    if type(layer) in _GLOBAL_POOLS:
        _check_channels_last(layer)
        return [O.GlobalPool(name, kind=_GLOBAL_POOLS[type(layer)], keepdims=bool(layer.keepdims))]
    if isinstance(layer, (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D)):
        _check_channels_last(layer)
        pads = layer.padding
        pads = (tuple(pads),) if isinstance(layer, keras.layers.ZeroPadding1D) else tuple(map(tuple, pads))
        return [O.Pad(name, pads=tuple((int(a), int(b)) for a, b in pads))]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [_batchnorm(layer, name)]
    if isinstance(layer, keras.layers.PReLU):
        alpha = np.asarray(keras.ops.convert_to_numpy(layer.alpha), np.float32)
        check_finite(name, "alpha", alpha)
        return [O.PReLU(name, alpha=alpha)]
    activation = _activation_layer(layer)
    if activation is None:
        raise _unsupported(layer)
    return [] if activation == O.LINEAR else [O.Activation(name, activation=activation)]


def _activation_layer(layer):
    """The ``(name, params)`` of an activation layer, or None if ``layer`` is not one."""
    if isinstance(layer, keras.layers.ReLU):
        slope, top, threshold = float(layer.negative_slope), layer.max_value, float(layer.threshold)
        if top is None and threshold == 0:
            return ("leaky_relu", (("alpha", slope),)) if slope else ("relu", ())
        return ("relu_general", (("max_value", None if top is None else float(top)),
                                 ("negative_slope", slope), ("threshold", threshold)))
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu", (("alpha", float(layer.negative_slope)),)
    if isinstance(layer, keras.layers.ELU):
        return "elu", (("alpha", float(layer.alpha)),)
    if isinstance(layer, keras.layers.Softmax):
        if not isinstance(layer.axis, int):
            raise _unsupported(layer, f"a softmax over several axes {layer.axis}")
        return "softmax", (("axis", int(layer.axis)),)
    if isinstance(layer, keras.layers.Activation):
        return _activation(layer)
    return None


def _kernel_ops(layer, name):
    if getattr(layer, "quantization_mode", None):
        raise _unsupported(layer, f"a {layer.quantization_mode}-quantized layer")
    if hasattr(layer, "inference_kernel"):
        kernel = np.asarray(layer.inference_kernel(), dtype=np.float32)
    else:
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)
    bias = getattr(layer, "bias", None)
    bias = None if bias is None else np.asarray(keras.ops.convert_to_numpy(bias), dtype=np.float32)
    check_finite(name, "kernel", kernel)
    if bias is not None:
        check_finite(name, "bias", bias)
    activation = _activation(layer)
    if kernel.ndim == 2:
        return [O.Dense(name, kernel=kernel, bias=bias, activation=activation)]
    if kernel.ndim in (3, 4):
        _check_channels_last(layer)
        padding = _padding(layer, causal=kernel.ndim == 3)
        return [O.Conv(name, kernel=kernel, bias=bias, activation=activation, strides=_tuple(layer.strides),
                       padding=padding, dilations=_tuple(getattr(layer, "dilation_rate", 1), kernel.ndim - 2),
                       groups=int(getattr(layer, "groups", 1)))]
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
        check_finite(name, f"batch normalization {what}", array)
    return O.BatchNorm(name, scale=scale.astype(np.float32), offset=offset.astype(np.float32))


def _activation(layer):
    """The ``(name, params)`` of ``layer.activation`` (keras.activations' defaults made explicit)."""
    fn = getattr(layer, "activation", None)
    name = "linear" if fn is None else keras.activations.serialize(fn)
    name = {"swish": "silu", "hard_swish": "hard_silu"}.get(name, name) if isinstance(name, str) else name
    if not isinstance(name, str) or name not in O.ACTIVATIONS:
        raise _unsupported(layer, f"activation {name!r}")
    params = {"leaky_relu": (("alpha", 0.2),), "elu": (("alpha", 1.0),), "celu": (("alpha", 1.0),),
              "softmax": (("axis", -1),), "log_softmax": (("axis", -1),)}.get(name, ())
    return name, params


def check_finite(name, what, array):
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


def _padding(layer, causal=False):
    padding = str(layer.padding).lower()
    if padding not in ("valid", "same", *(("causal",) if causal else ())):
        raise _unsupported(layer, f"padding={padding!r}")
    return padding


def _tuple(value, rank=None):
    if isinstance(value, (int, np.integer)):
        return (int(value),) * (rank or 1)
    return tuple(int(v) for v in value)


def _unsupported(layer, what=None):
    detail = f": {what}" if what else ""
    return UnsupportedLayerError(
        f"Unsupported layer '{layer.name}' ({type(layer).__name__}){detail}. The native ONNX graph builder "
        f"handles {SUPPORTED}. Export with exporter='auto' or 'standard' (a standard ONNX exporter on the "
        "stripped model), or remove the layer.")
