"""Build a self-contained ONNX model from a ``Stripped`` model (``to_onnx``).

Layout: the graph takes the Keras input as is, channels_last ``(batch, H, W, C)`` float32,
and returns ``logits``. ONNX ``Conv`` / ``MaxPool`` / ``AveragePool`` / ``GlobalAveragePool``
are channels_first, so each tensor carries its layout: an image is transposed to NCHW where
a window op first reads it, and back to NHWC right before ``Flatten``, which therefore
flattens in Keras's (H, W, C) order; ``Add`` brings its inputs to one layout; an unfolded
BatchNormalization is a per-channel ``Mul`` + ``Add`` in whichever layout it meets. "same" padding is
Keras/TensorFlow's: ``out = ceil(in / stride)``, the odd extra pad at the bottom/right;
it is written as explicit ``pads``.

Weights: a convolution kernel (kh, kw, in, out) is stored as ONNX's (out, in, kh, kw); a
dense kernel (in, out) as (out, in) for ``Gemm(transB=1)``. Each tensor is stored dense or
sparse (``supermask.export.sparse``); ternary kernels are int8 + ``DequantizeLinear``.
Dense layers always use ``Gemm`` with the transposed kernel: onnxruntime 1.32 rewrites
``DequantizeLinear -> MatMul`` (and ``-> Gemm`` without transB) into ``MatMulNBits``, which
quantises the activations to int8 and changes logits by ~1e-2, while ``DequantizeLinear ->
Gemm(transB=1)`` and ``-> Conv`` keep float32 arithmetic (the export's self-check would
catch a future rewrite).

Checking: ``onnx.checker.check_model`` (structure, opset, types of the dense initializers).
Its ``full_check=True`` runs ONNX shape inference, which types a sparse initializer as
``sparse_tensor`` and then rejects it as an input of ``Gemm`` / ``Conv`` / ``DequantizeLinear``
even though the IR defines sparse initializers as initializers (onnxruntime densifies them on
load, see microsoft/onnxruntime#8038), so the full check is not used.
"""

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from supermask import __version__
from supermask.export import sparse
from supermask.export.errors import ExportError
from supermask.export.ops import Add, AvgPool2D, BatchNorm, Conv2D, Dense, Flatten, GlobalAvgPool, MaxPool2D, ReLU

OPSET = 17
OUTPUT = "logits"


def same_pads(size, kernel, stride):
    """(before, after, out) of Keras/TensorFlow "same" padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def window(hw, kernel, strides, padding, what):
    """ONNX ``pads`` [top, left, bottom, right] and the output (H, W) of a 2-D window op."""
    pads, out = [0, 0, 0, 0], []
    for axis in range(2):
        size, k, s = hw[axis], kernel[axis], strides[axis]
        if padding == "same":
            before, after, n = same_pads(size, k, s)
            pads[axis], pads[axis + 2] = before, after
        else:
            n = (size - k) // s + 1
        if n < 1:
            raise ExportError(f"{what}: a {k}-wide window does not fit an input of size {size}.")
        out.append(n)
    return pads, tuple(out)


class _Builder:
    def __init__(self, storage, ternary, ternary_bits, ternary_op):
        self.storage, self.ternary, self.bits, self.ternary_op = storage, ternary, ternary_bits, ternary_op
        self.nodes, self.initializers, self.sparse_initializers, self.layers = [], [], [], []
        self.opset = OPSET
        self._count = 0

    def node(self, op, inputs, name, **attrs):
        self._count += 1
        output = f"{name}/{op.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{name}/{op}", **attrs))
        return output

    def tensor(self, array, name):
        """Add a float32 (or int8) weight tensor, dense or sparse; return (name, kind, bytes)."""
        proto, kind = sparse.initializer(array, name, self.storage)
        (self.sparse_initializers if kind == "sparse" else self.initializers).append(proto)
        size = sparse.sparse_bytes(array) if kind == "sparse" else sparse.dense_bytes(array)
        return name, kind, size

    def weights(self, op, stored_kernel):
        """Kernel (ONNX layout) and bias inputs of ``op``; records the layer's storage."""
        scale = sparse.use_ternary(op.name, stored_kernel, self.ternary)
        if scale is None:
            kernel, kind, size = self.tensor(stored_kernel, f"{op.name}.kernel")
            dtype = "float32"
        else:
            quantized = f"{op.name}.kernel_q"
            proto, kind, size = sparse.ternary_initializer(stored_kernel, quantized, self.storage, self.bits)
            (self.sparse_initializers if kind == "sparse" else self.initializers).append(proto)
            scale_name, kernel = f"{op.name}.kernel_scale", f"{op.name}.kernel"
            self.initializers.append(numpy_helper.from_array(np.asarray(scale, np.float32), scale_name))
            if self.ternary_op == "cast":  # float(q) * s, folded into float weights by onnxruntime at load
                self.nodes.append(helper.make_node("Cast", [quantized], [f"{kernel}_sign"], to=TensorProto.FLOAT,
                                                   name=f"{op.name}/Cast"))
                self.nodes.append(helper.make_node("Mul", [f"{kernel}_sign", scale_name], [kernel],
                                                   name=f"{op.name}/Mul"))
            else:
                self.initializers.append(sparse.zero_point(f"{op.name}.kernel_zero_point", self.bits))
                self.nodes.append(helper.make_node(
                    "DequantizeLinear", [quantized, scale_name, f"{op.name}.kernel_zero_point"], [kernel],
                    name=f"{op.name}/DequantizeLinear"))
            self.opset = max(self.opset, sparse.OPSET_FOR_BITS[self.bits])
            size, dtype = size + 5, f"ternary int{self.bits}"
        inputs = [kernel]
        if op.bias is not None:
            bias, _, bias_size = self.tensor(op.bias, f"{op.name}.bias")
            inputs.append(bias)
            size += bias_size
        self.layers.append({
            "layer": op.name, "op": type(op).__name__.lower(), "shape": list(op.kernel.shape),
            "density": float(np.count_nonzero(op.kernel)) / op.kernel.size,
            "storage": kind, "dtype": dtype,
            "scale": None if scale is None else float(scale), "bytes": int(size),
        })
        return inputs


def to_onnx(stripped, storage="auto", ternary="auto", metadata=None, ternary_bits=8, ternary_op="dequantize"):
    """``(onnx.ModelProto, layers)`` for a ``Stripped`` model.

    ``storage``: auto | dense | sparse for every weight tensor; ``ternary``: auto | on | off
    for every kernel, ``ternary_bits``: 8, 4 or 2 per ternary entry, ``ternary_op``:
    "dequantize" or "cast" (see ``supermask.export.sparse``). ``metadata``: extra string-valued ``metadata_props``.
    ``layers``: one dict per kernel layer (density, storage, bytes...). The opset is 17, or
    21 / 25 when 4- / 2-bit ternary kernels are present.
    """
    sparse.check_choice("storage", storage, sparse.STORAGES)
    sparse.check_choice("ternary", ternary, sparse.TERNARY)
    sparse.check_choice("ternary_bits", ternary_bits, sparse.TERNARY_BITS)
    sparse.check_choice("ternary_op", ternary_op, sparse.TERNARY_OPS)
    g = _Builder(storage, ternary, ternary_bits, ternary_op)
    shape = tuple(stripped.input_shape)
    layout = {1: "flat", 3: "NHWC"}.get(len(shape))
    if layout is None:
        raise ExportError(f"Input shape {shape} is neither an image (H, W, C) nor a flat vector.")
    # name -> (ONNX tensor, layout, shape without the batch axis, (H, W, C) order for images)
    env = {stripped.input_name: (stripped.input_name, layout, shape)}

    def image(name, op_name):
        x, layout, shape = env[name]
        if layout == "flat":
            raise ExportError(f"Layer '{op_name}' needs an image (H, W, C) input but reads a flat tensor.")
        if layout == "NHWC":
            x = g.node("Transpose", [x], op_name, perm=[0, 3, 1, 2])
        return x, shape

    for op in stripped.ops:
        x, layout, shape = env[op.inputs[0]]
        if isinstance(op, Conv2D):
            x, shape = image(op.inputs[0], op.name)
            kh, kw, cin, cout = op.kernel.shape
            if cin != shape[2]:
                raise ExportError(f"Layer '{op.name}' expects {cin} input channels, receives {shape[2]}.")
            pads, hw = window(shape[:2], (kh, kw), op.strides, op.padding, f"Layer '{op.name}'")
            inputs = g.weights(op, np.ascontiguousarray(op.kernel.transpose(3, 2, 0, 1)))
            x = g.node("Conv", [x, *inputs], op.name, kernel_shape=[kh, kw], strides=list(op.strides), pads=pads)
            layout, shape = "NCHW", (*hw, cout)
        elif isinstance(op, Dense):
            if layout != "flat":
                raise ExportError(f"Dense layer '{op.name}' receives a rank-{len(shape) + 1} tensor; the "
                                  "exporter supports dense layers on flat inputs only (add a Flatten).")
            if op.kernel.shape[0] != shape[0]:
                raise ExportError(f"Layer '{op.name}' expects {op.kernel.shape[0]} inputs, receives {shape[0]}.")
            inputs = g.weights(op, np.ascontiguousarray(op.kernel.T))
            x = g.node("Gemm", [x, *inputs], op.name, transB=1)
            shape = (op.kernel.shape[1],)
        elif isinstance(op, (MaxPool2D, AvgPool2D)):
            x, shape = image(op.inputs[0], op.name)
            pads, hw = window(shape[:2], op.pool_size, op.strides, op.padding, f"Layer '{op.name}'")
            kind = "MaxPool" if isinstance(op, MaxPool2D) else "AveragePool"
            x = g.node(kind, [x], op.name, kernel_shape=list(op.pool_size), strides=list(op.strides), pads=pads)
            layout, shape = "NCHW", (*hw, shape[2])
        elif isinstance(op, GlobalAvgPool):
            x, shape = image(op.inputs[0], op.name)
            x = g.node("Flatten", [g.node("GlobalAveragePool", [x], op.name)], op.name, axis=1)
            layout, shape = "flat", (shape[2],)
        elif isinstance(op, Flatten):
            if layout == "NCHW":
                x, layout = g.node("Transpose", [x], op.name, perm=[0, 2, 3, 1]), "NHWC"
            if layout == "NHWC":
                x = g.node("Flatten", [x], op.name, axis=1)
            layout, shape = "flat", (math.prod(shape),)
        elif isinstance(op, BatchNorm):
            channels = shape[-1] if layout != "NCHW" else shape[2]
            if op.scale.shape != (channels,):
                raise ExportError(f"Layer '{op.name}' normalizes {op.scale.size} channels, receives {channels}.")
            const = (1, channels, 1, 1) if layout == "NCHW" else (channels,)
            scale, _, _ = g.tensor(op.scale.reshape(const), f"{op.name}.scale")
            offset, _, _ = g.tensor(op.offset.reshape(const), f"{op.name}.offset")
            x = g.node("Add", [g.node("Mul", [x, scale], op.name), offset], op.name)
        elif isinstance(op, Add):
            terms = []
            for name in op.inputs:
                t, t_layout, t_shape = env[name]
                if t_shape != shape or (t_layout == "flat") != (layout == "flat"):
                    raise ExportError(f"Layer '{op.name}' adds tensors of shapes {shape} and {t_shape}.")
                if t_layout != layout:  # one NHWC, one NCHW: bring it to the first input's layout
                    t = g.node("Transpose", [t], op.name, perm=[0, 3, 1, 2] if layout == "NCHW" else [0, 2, 3, 1])
                terms.append(t)
            x = terms[0]
            for t in terms[1:]:
                x = g.node("Add", [x, t], op.name)
        elif isinstance(op, ReLU):
            pass
        else:  # pragma: no cover - to_ops() only produces the types above
            raise ExportError(f"Internal error: no ONNX form for {op!r}.")
        if getattr(op, "activation", None) == "relu" or isinstance(op, ReLU):
            x = g.node("Relu", [x], op.name)
        env[op.name] = (x, layout, shape)
    x, layout, shape = env[stripped.output or stripped.ops[-1].name]
    if layout == "NCHW":
        x = g.node("Transpose", [x], "output", perm=[0, 2, 3, 1])
    if not g.nodes or g.nodes[-1].output[0] != x:
        x = g.node("Identity", [x], "output")
    g.nodes[-1].output[0] = OUTPUT

    graph = helper.make_graph(
        g.nodes, stripped.name,
        [helper.make_tensor_value_info(stripped.input_name, TensorProto.FLOAT, ["batch", *stripped.input_shape])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", *shape])],
        initializer=g.initializers, sparse_initializer=g.sparse_initializers)
    opset = helper.make_opsetid("", g.opset)
    model = helper.make_model(graph, opset_imports=[opset],
                              producer_name="supermask", producer_version=__version__,
                              doc_string=f"Keras model '{stripped.name}' with its masks folded in, "
                                         "exported by supermask.export")
    model.ir_version = helper.find_min_ir_version_for([opset])  # 8 for opset 17: runs on older runtimes
    props = {"supermask_version": __version__, "input_layout": "NHWC",
             "density": json.dumps({r["layer"]: r["density"] for r in g.layers}),
             "overall_density": json.dumps(sum(r["density"] * math.prod(r["shape"]) for r in g.layers)
                                           / sum(math.prod(r["shape"]) for r in g.layers)),
             "storage": json.dumps({r["layer"]: f"{r['storage']} {r['dtype']}" for r in g.layers}),
             **{k: str(v) for k, v in (metadata or {}).items()}}
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model, g.layers
