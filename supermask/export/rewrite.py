"""Sparse / ternary storage for an ONNX file written by a standard exporter (``rewrite``).

A standard exporter (tf2onnx, torch.onnx, jax2onnx) stores each kernel of the stripped model as
a dense float32 initializer, possibly transposed or reshaped (a Conv1D kernel ``(k, in, out)``
becomes ``(out, in, 1, k)`` in tf2onnx's file, a Dense kernel may become ``(out, in)``). Each
kernel is found by its values: an initializer with the same number of entries that equals a
transposition of the kernel (reshaped), or else holds exactly the same multiset of values. The
initializer then gets the storage the native builder would give it (``supermask.export.sparse``):
dense or sparse by ``storage``, ternary int8 + scale where ``ternary`` says so. Every other float
initializer is stored sparse where that is smaller (``storage="auto"``; a kernel the exporter
changed, e.g. with a batch normalization folded in, keeps its zeros that way). A ternary kernel
read by a ``MatMul`` is rebuilt with ``Cast`` + ``Mul`` even under ``ternary_op="dequantize"``:
onnxruntime turns ``DequantizeLinear -> MatMul`` into ``MatMulNBits``, which quantizes the
activations (see ``supermask.export.onnx_graph``).
"""

import itertools

import numpy as np
from onnx import TensorProto, numpy_helper

from supermask.errors import ConfigError
from supermask.export import sparse


def find(kernel, candidates, taken):
    """The index in ``candidates`` (name, array) of the initializer holding ``kernel``, or None."""
    same_size = [i for i, (_, a) in enumerate(candidates) if i not in taken and a.size == kernel.size]
    for i in same_size:  # a transposition of the kernel, reshaped
        array = candidates[i][1]
        if any(np.array_equal(kernel.transpose(p).reshape(array.shape), array)
               for p in itertools.permutations(range(kernel.ndim))):
            return i
    ordered = np.sort(kernel, axis=None)
    return next((i for i in same_size if np.array_equal(np.sort(candidates[i][1], axis=None), ordered)), None)


def rewrite(proto, kernels, kinds, storage="auto", ternary="auto", bits=8, ternary_op="dequantize"):
    """Store ``kernels`` (``{layer key: float32 kernel}``, ``kinds`` ``{key: "dense" | "conv1d" ...}``)
    of ``proto`` sparse / ternary in place; return one report row per kernel (as ``to_onnx``'s)."""
    sparse.check_choice("storage", storage, sparse.STORAGES)
    sparse.check_choice("ternary", ternary, sparse.TERNARY)
    sparse.check_choice("ternary_bits", bits, sparse.TERNARY_BITS)
    sparse.check_choice("ternary_op", ternary_op, sparse.TERNARY_OPS)
    graph = proto.graph
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if bits != 8 and opset < sparse.OPSET_FOR_BITS[bits]:
        raise ConfigError(f"--ternary-bits {bits} needs opset {sparse.OPSET_FOR_BITS[bits]}, but the standard "
                          f"exporter wrote opset {opset}. Use --ternary-bits 8 (or a model the native builder covers).")
    floats = [(t.name, numpy_helper.to_array(t)) for t in graph.initializer if t.data_type == TensorProto.FLOAT]
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    rows, replaced, taken, new_nodes = [], {}, set(), []
    for key, kernel in kernels.items():
        row = {"layer": key, "op": kinds[key], "shape": list(kernel.shape),
               "density": float(np.count_nonzero(kernel)) / kernel.size, "scale": None}
        index = find(kernel, floats, taken)
        if index is None:
            if ternary == "on":
                raise ConfigError(f"--ternary on: the kernel of layer '{key}' is not stored as such in the standard "
                                  "exporter's file (it changed it). Use --ternary auto or off.")
            rows.append({**row, "storage": "unmatched", "dtype": "float32", "bytes": 0})
            continue
        taken.add(index)
        name, array = floats[index]
        scale = sparse.use_ternary(key, kernel, ternary)
        if scale is None:
            tensor, kind = sparse.initializer(array, name, storage)
            dense, sparse_tensors, nodes = ([], [tensor], []) if kind == "sparse" else ([tensor], [], [])
            size, dtype = sparse.sparse_bytes(array) if kind == "sparse" else sparse.dense_bytes(array), "float32"
        else:
            op = "cast" if ternary_op == "cast" or "MatMul" in readers.get(name, ()) else "dequantize"
            dense, sparse_tensors, nodes, kind, size = sparse.ternary_tensor(array, scale, name, storage, bits, op)
            dtype = f"ternary int{bits}" + (" (cast)" if op != ternary_op else "")
        replaced[name] = (dense, sparse_tensors)
        new_nodes += nodes
        rows.append({**row, "storage": kind, "dtype": dtype, "scale": None if scale is None else float(scale),
                     "bytes": int(size)})
    for i, (name, array) in enumerate(floats):  # the other float tensors: sparse where smaller
        if i not in taken and array.ndim and sparse.choose_storage(array, storage) == "sparse":
            replaced[name] = ([], [sparse.sparsify(array, name)])
    _replace(graph, replaced, new_nodes)
    return rows


def _replace(graph, replaced, new_nodes):
    for node in graph.node:  # exporters' debug notes (torch.onnx: stack traces, ~200 bytes a node)
        del node.metadata_props[:]
        node.doc_string = ""
    keep = [t for t in graph.initializer if t.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    for dense, sparse_tensors in replaced.values():
        graph.initializer.extend(dense)
        graph.sparse_initializer.extend(sparse_tensors)
    inputs = [i for i in graph.input if i.name not in replaced]  # an initializer listed as an input too
    del graph.input[:]
    graph.input.extend(inputs)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + nodes)  # the nodes that rebuild ternary kernels run first
