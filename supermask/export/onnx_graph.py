"""Build a self-contained ONNX model from a ``Stripped`` model (``to_onnx``).

Layout: the graph takes the Keras input as is, channels_last (e.g. ``(batch, H, W, C)``) float32,
and returns ``logits``; ``supermask.export.emit`` writes each op's nodes and tracks which tensors
ONNX holds channels_first (``Conv`` and the pools are channels_first in ONNX).

Weights: a convolution kernel (*window, in, out) is stored as ONNX's (out, in, *window); a
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
from supermask.export import emit, sparse
from supermask.export import ops as O
from supermask.export.emit import Value
from supermask.export.errors import ExportError

OPSET = 17
OUTPUT = "logits"
INPUT_LAYOUTS = {1: "flat", 2: "NWC", 3: "NHWC"}
_UNARY = {O.Pool: emit.pool, O.GlobalPool: emit.global_pool, O.BatchNorm: emit.batchnorm, O.Flatten: emit.flatten,
          O.Reshape: emit.reshape, O.Pad: emit.pad, O.PReLU: emit.prelu, O.Conv: emit.conv, O.Dense: emit.dense}


class _Builder:
    def __init__(self, storage, ternary, ternary_bits, ternary_op):
        self.storage, self.ternary, self.bits, self.ternary_op = storage, ternary, ternary_bits, ternary_op
        self.nodes, self.initializers, self.sparse_initializers, self.layers = [], [], [], []
        self.opset = OPSET
        self._count, self._names = 0, set()

    def node(self, op, inputs, name, **attrs):
        self._count += 1
        output, node_name = f"{name}/{op.lower()}_{self._count}", f"{name}/{op}"
        if node_name in self._names:  # node names are unique in ONNX
            node_name = f"{node_name}_{self._count}"
        self._names.add(node_name)
        self.nodes.append(helper.make_node(op, inputs, [output], name=node_name, **attrs))
        return output

    def scalar(self, value, at):
        """A float32 scalar constant (an initializer of its own)."""
        self._count += 1
        name = f"{at}.const_{self._count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def shape_const(self, values, at):
        """An int64 vector constant (a shape or pads)."""
        self._count += 1
        name = f"{at}.shape_{self._count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

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
            kernel = f"{op.name}.kernel"
            dense, sparse_, nodes, kind, size = sparse.ternary_tensor(stored_kernel, scale, kernel, self.storage,
                                                                      self.bits, self.ternary_op)
            self.initializers += dense
            self.sparse_initializers += sparse_
            self.nodes += nodes
            self._names.update(n.name for n in nodes)
            self.opset = max(self.opset, sparse.OPSET_FOR_BITS[self.bits])
            dtype = f"ternary int{self.bits}"
        inputs = [kernel]
        if op.bias is not None:
            bias, _, bias_size = self.tensor(op.bias, f"{op.name}.bias")
            inputs.append(bias)
            size += bias_size
        self.layers.append({
            "layer": op.name, "op": O.op_kind(op), "shape": list(op.kernel.shape),
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
    if not shape:
        raise ExportError("The model's input is a scalar per example; the exporter needs a vector, sequence or image.")
    env = {stripped.input_name: Value(stripped.input_name, shape)}  # op name -> its output
    for op in stripped.ops:
        values = [env[name] for name in op.inputs]
        if type(op) in _UNARY:
            v = _UNARY[type(op)](g, op, values[0])
        elif isinstance(op, O.Merge):
            v = emit.merge(g, op, values)
        elif isinstance(op, O.Concat):
            v = emit.concat(g, op, values)
        elif isinstance(op, O.Activation):
            v = emit.activation(g, op.activation, values[0], op.name)
        else:  # pragma: no cover - the reader only produces the types above
            raise ExportError(f"Internal error: no ONNX form for {op!r}.")
        env[op.name] = v
    v = emit.to_last(g, env[stripped.output or stripped.ops[-1].name], "output")
    x, shape = v.name, v.shape
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
    props = {"supermask_version": __version__,
             "input_layout": INPUT_LAYOUTS.get(len(stripped.input_shape), "channels_last"),
             "density": json.dumps({r["layer"]: r["density"] for r in g.layers}),
             "overall_density": json.dumps(sum(r["density"] * math.prod(r["shape"]) for r in g.layers)
                                           / sum(math.prod(r["shape"]) for r in g.layers)),
             "storage": json.dumps({r["layer"]: f"{r['storage']} {r['dtype']}" for r in g.layers}),
             **{k: str(v) for k, v in (metadata or {}).items()}}
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model, g.layers
