"""ONNX nodes for each plain op (``supermask.export.ops``), written through a graph builder ``g``.

A value is a ``Value``: its ONNX tensor name, its shape in Keras's terms (channels_last, no batch
axis) and whether ONNX holds it channels_first (``(N, C, *spatial)``). ONNX ``Conv`` and the pools
are channels_first, so an input is transposed where a window op first reads it and back to
channels_last right before an op that depends on Keras's order (``Flatten``, ``Reshape``,
``Dense`` on a sequence, ``PReLU``); element-wise ops, ``BatchNormalization``, ``Concatenate``,
softmax and zero padding work in whichever layout they meet. "same" padding is Keras/TensorFlow's:
``out = ceil(in / stride)``, the odd extra pad at the end, written as explicit ``pads``.
"""

import math
from dataclasses import dataclass

import numpy as np

from supermask.export.errors import ExportError, UnsupportedLayerError

SELU = (1.67326324, 1.05070098)  # keras.activations.selu's alpha and scale
_SIMPLE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus", "softsign": "Softsign",
           "exponential": "Exp", "hard_silu": "HardSwish"}
_MERGE = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "maximum": "Max", "minimum": "Min"}


@dataclass(frozen=True)
class Value:
    name: str
    shape: tuple
    first: bool = False

    @property
    def rank(self):
        return len(self.shape)


def to_first(g, v, at):
    """``v`` channels_first (a flat value stays as it is)."""
    if v.first or v.rank < 2:
        return v
    return Value(g.node("Transpose", [v.name], at, perm=[0, v.rank, *range(1, v.rank)]), v.shape, True)


def to_last(g, v, at):
    """``v`` in Keras's channels_last order."""
    if not v.first:
        return v
    return Value(g.node("Transpose", [v.name], at, perm=[0, *range(2, v.rank + 1), 1]), v.shape, False)


def onnx_axis(v, axis, at):
    """The ONNX axis of ``v`` for Keras's ``axis`` (counting the batch axis)."""
    rank = v.rank + 1
    if not -rank <= axis < rank or axis % rank == 0:
        raise ExportError(f"Layer '{at}': axis {axis} is not a feature axis of a rank-{rank} tensor.")
    axis %= rank
    if not v.first:
        return axis
    return 1 if axis == rank - 1 else axis + 1


def same_pads(size, kernel, stride):
    """(before, after, out) of Keras/TensorFlow "same" padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def window(sizes, kernel, strides, padding, what, dilations=None):
    """ONNX ``pads`` [begins..., ends...] and the output sizes of a window op over ``sizes``."""
    rank = len(sizes)
    pads, out = [0] * (2 * rank), []
    for axis in range(rank):
        size, s = sizes[axis], strides[axis]
        k = (kernel[axis] - 1) * (dilations[axis] if dilations else 1) + 1
        if padding == "same":
            pads[axis], pads[axis + rank], n = same_pads(size, k, s)
        elif padding == "causal":
            pads[axis], n = k - 1, -(-size // s)
        else:
            n = (size - k) // s + 1
        if n < 1:
            raise ExportError(f"{what}: a {k}-wide window does not fit an input of size {size}.")
        out.append(n)
    return pads, tuple(out)


def conv(g, op, v):
    v = to_first(g, v, op.name)
    rank, cin, cout = op.rank, op.kernel.shape[-2] * op.groups, op.kernel.shape[-1]
    if v.rank != rank + 1 or cin != v.shape[-1]:
        raise ExportError(f"Layer '{op.name}' expects a rank-{rank + 2} input with {cin} channels, receives "
                          f"shape {('batch', *v.shape)}.")
    pads, sizes = window(v.shape[:-1], op.kernel.shape[:rank], op.strides, op.padding, f"Layer '{op.name}'",
                         op.dilations)
    inputs = g.weights(op, np.ascontiguousarray(op.kernel.transpose(rank + 1, rank, *range(rank))))
    x = g.node("Conv", [v.name, *inputs], op.name, kernel_shape=list(op.kernel.shape[:rank]),
               strides=list(op.strides), pads=pads, dilations=list(op.dilations), group=op.groups)
    return activation(g, op.activation, Value(x, (*sizes, cout), True), op.name)


def dense(g, op, v):
    cin, cout = op.kernel.shape
    if v.shape[-1] != cin:
        raise ExportError(f"Layer '{op.name}' expects {cin} inputs, receives shape {('batch', *v.shape)}.")
    inputs = g.weights(op, np.ascontiguousarray(op.kernel.T))
    if v.rank == 1:
        x = g.node("Gemm", [v.name, *inputs], op.name, transB=1)
    else:  # over the last axis of a sequence or image: (N * ..., in) -> Gemm -> back
        v = to_last(g, v, op.name)
        rows = g.node("Reshape", [v.name, g.shape_const([-1, cin], op.name)], op.name)
        x = g.node("Gemm", [rows, *inputs], op.name, transB=1)
        x = g.node("Reshape", [x, g.shape_const([-1, *v.shape[:-1], cout], op.name)], op.name)
    return activation(g, op.activation, Value(x, (*v.shape[:-1], cout)), op.name)


def pool(g, op, v):
    v = to_first(g, v, op.name)
    if v.rank != len(op.pool_size) + 1:
        raise ExportError(f"Layer '{op.name}' pools {len(op.pool_size)}-D windows, receives shape {v.shape}.")
    pads, sizes = window(v.shape[:-1], op.pool_size, op.strides, op.padding, f"Layer '{op.name}'")
    x, rank = v.name, len(op.pool_size)
    if op.edge_pad and pads[:rank] != pads[rank:]:  # Keras on torch: uneven pads copy the edge, which counts
        x = g.node("Pad", [x, g.shape_const([0, 0, *pads[:rank], 0, 0, *pads[rank:]], op.name)], op.name, mode="edge")
        pads = [0] * (2 * rank)
    attrs = {"count_include_pad": 0} if op.kind == "avg" else {}
    x = g.node("MaxPool" if op.kind == "max" else "AveragePool", [x], op.name,
               kernel_shape=list(op.pool_size), strides=list(op.strides), pads=pads, **attrs)
    return Value(x, (*sizes, v.shape[-1]), True)


def global_pool(g, op, v):
    if v.rank < 2:
        raise ExportError(f"Layer '{op.name}' needs a sequence or an image, receives shape {v.shape}.")
    v = to_first(g, v, op.name)
    x = g.node("GlobalMaxPool" if op.kind == "max" else "GlobalAveragePool", [v.name], op.name)
    if op.keepdims:
        return Value(x, (*([1] * (v.rank - 1)), v.shape[-1]), True)
    return Value(g.node("Flatten", [x], op.name, axis=1), (v.shape[-1],))


def batchnorm(g, op, v):
    channels = v.shape[-1]
    if op.scale.shape != (channels,):
        raise ExportError(f"Layer '{op.name}' normalizes {op.scale.size} channels, receives {channels}.")
    const = (channels, *([1] * (v.rank - 1))) if v.first else (channels,)
    scale, _, _ = g.tensor(op.scale.reshape(const), f"{op.name}.scale")
    offset, _, _ = g.tensor(op.offset.reshape(const), f"{op.name}.offset")
    return Value(g.node("Add", [g.node("Mul", [v.name, scale], op.name), offset], op.name), v.shape, v.first)


def merge(g, op, values):
    first = values[0]
    terms = []
    for v in values:
        if v.shape != first.shape:
            raise UnsupportedLayerError(f"Unsupported layer '{op.name}': it merges tensors of shapes {first.shape} "
                                        f"and {v.shape} (broadcasting).")
        terms.append((to_first if first.first else to_last)(g, v, op.name).name)
    if op.kind == "average":
        return Value(g.node("Mean", terms, op.name), first.shape, first.first)
    if op.kind == "subtract" and len(terms) != 2:
        raise ExportError(f"Layer '{op.name}' subtracts {len(terms)} tensors; Subtract takes two.")
    x = terms[0]
    for t in terms[1:]:
        x = g.node(_MERGE[op.kind], [x, t], op.name)
    return Value(x, first.shape, first.first)


def concat(g, op, values):
    first = values[0]
    values = [(to_first if first.first else to_last)(g, v, op.name) for v in values]
    axis = onnx_axis(first, op.axis, op.name)
    keras_axis = op.axis % (first.rank + 1) - 1
    for v in values:
        if v.rank != first.rank or any(a != b for i, (a, b) in enumerate(zip(v.shape, first.shape))
                                       if i != keras_axis):
            raise ExportError(f"Layer '{op.name}' concatenates shapes {first.shape} and {v.shape} "
                              f"along axis {op.axis}.")
    shape = list(first.shape)
    shape[keras_axis] = sum(v.shape[keras_axis] for v in values)
    return Value(g.node("Concat", [v.name for v in values], op.name, axis=axis), tuple(shape), first.first)


def flatten(g, op, v):
    if v.rank == 1:
        return v
    v = to_last(g, v, op.name)
    return Value(g.node("Flatten", [v.name], op.name, axis=1), (math.prod(v.shape),))


def reshape(g, op, v):
    size, target = math.prod(v.shape), list(op.shape)
    known = math.prod(d for d in target if d != -1)
    if target.count(-1) == 1 and known and size % known == 0:
        target[target.index(-1)] = size // known
    if target.count(-1) or math.prod(target) != size:
        raise UnsupportedLayerError(f"Unsupported layer '{op.name}': cannot reshape {v.shape} to {op.shape}.")
    v = to_last(g, v, op.name)
    return Value(g.node("Reshape", [v.name, g.shape_const([-1, *target], op.name)], op.name), tuple(target))


def pad(g, op, v):
    if v.rank != len(op.pads) + 1:
        raise ExportError(f"Layer '{op.name}' pads {len(op.pads)} axes, receives shape {v.shape}.")
    lead = [0, 0] if v.first else [0]
    tail = [] if v.first else [0]
    begins = lead + [b for b, _ in op.pads] + tail
    ends = lead + [a for _, a in op.pads] + tail
    x = g.node("Pad", [v.name, g.shape_const(begins + ends, op.name)], op.name)
    shape = (*(s + b + a for s, (b, a) in zip(v.shape, op.pads)), v.shape[-1])
    return Value(x, shape, v.first)


def prelu(g, op, v):
    if tuple(op.alpha.shape) != tuple(v.shape):
        alpha = op.alpha.reshape((1,) * (v.rank - op.alpha.ndim) + op.alpha.shape)
    else:
        alpha = op.alpha
    v = to_last(g, v, op.name)
    slope, _, _ = g.tensor(np.ascontiguousarray(alpha, np.float32), f"{op.name}.alpha")
    return Value(g.node("PRelu", [v.name, slope], op.name), v.shape)


def activation(g, spec, v, at):
    """``v`` through the activation ``spec`` = ``(name, params)`` (see ``ops.ACTIVATIONS``)."""
    name, params = spec[0], dict(spec[1])
    x = v.name
    if name == "linear":
        return v
    if name in _SIMPLE:
        x = g.node(_SIMPLE[name], [x], at)
    elif name == "relu6":
        x = g.node("Clip", [x, g.scalar(0.0, at), g.scalar(6.0, at)], at)
    elif name == "leaky_relu":
        x = g.node("LeakyRelu", [x], at, alpha=params["alpha"])
    elif name in ("elu", "celu"):
        x = g.node(name.capitalize(), [x], at, alpha=params["alpha"])
    elif name == "selu":
        x = g.node("Selu", [x], at, alpha=SELU[0], gamma=SELU[1])
    elif name == "hard_sigmoid":
        x = g.node("HardSigmoid", [x], at, alpha=1.0 / 6.0, beta=0.5)
    elif name == "gelu":  # exact (erf) form, Keras's default: 0.5 x (1 + erf(x / sqrt 2))
        erf = g.node("Erf", [g.node("Mul", [x, g.scalar(1.0 / math.sqrt(2.0), at)], at)], at)
        x = g.node("Mul", [g.node("Mul", [x, g.node("Add", [erf, g.scalar(1.0, at)], at)], at),
                           g.scalar(0.5, at)], at)
    elif name == "silu":
        x = g.node("Mul", [x, g.node("Sigmoid", [x], at)], at)
    elif name == "mish":
        x = g.node("Mul", [x, g.node("Tanh", [g.node("Softplus", [x], at)], at)], at)
    elif name in ("softmax", "log_softmax"):
        x = g.node("Softmax" if name == "softmax" else "LogSoftmax", [x], at,
                   axis=onnx_axis(v, params["axis"], at))
    elif name == "relu_general":  # Keras's relu(x, negative_slope, max_value, threshold)
        t, top, slope = params["threshold"], params["max_value"], params["negative_slope"]
        pos = g.node("Relu", [x], at) if t == 0 else g.node(
            "Where", [g.node("Greater", [x, g.scalar(t, at)], at), x, g.scalar(0.0, at)], at)
        if top is not None:
            pos = g.node("Clip", [pos, g.scalar(0.0, at), g.scalar(top, at)], at)
        if slope:
            below = g.node("Relu", [g.node("Sub", [g.scalar(t, at), x], at)], at)
            pos = g.node("Sub", [pos, g.node("Mul", [below, g.scalar(slope, at)], at)], at)
        x = pos
    else:  # pragma: no cover - the reader only produces the names above
        raise ExportError(f"Internal error: no ONNX form for the activation {name!r}.")
    return Value(x, v.shape, v.first)
