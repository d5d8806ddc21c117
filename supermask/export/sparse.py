"""How each weight tensor is stored in the ONNX file: dense or sparse, float32 or ternary.

* **Sparse** storage is a ``SparseTensorProto`` in ``graph.sparse_initializer``: the nonzero
  values and their int64 LINEAR indices into the row-major flattened tensor (ascending),
  with ``dims`` the dense shape. onnxruntime densifies it when it loads the model. It costs
  ``itemsize + 8`` bytes per nonzero against ``itemsize`` per entry for dense storage, so
  ``auto`` picks sparse exactly when it is smaller: float32 below 1/3 density, int8 below 1/9.
* **Ternary** storage is for kernels whose nonzeros all have one magnitude ``s`` (signed-
  constant weights times a mask, as the supermask papers use): a tensor of {-1, 0, +1} plus
  the float32 scale ``s``; the graph turns it back into float weights with
  ``DequantizeLinear`` (zero point 0), which gives exactly ``q * s``. The tensor is int8 by
  default (opset 17, dense or sparse), or packed int4 (opset 21) / int2 (opset 25) with
  ``bits=4`` / ``2``: 1/8 and 1/16 of float32. Packed tensors are always dense: onnxruntime
  1.32 refuses sparse int4/int2 initializers (and a dense int2 tensor is smaller than a
  sparse one above 3 % density anyway). ``op="cast"`` writes ``Cast`` + ``Mul`` instead of
  ``DequantizeLinear`` (the same ``q * s``): onnxruntime folds it into float32 weights when
  it loads the model, whereas it runs ``DequantizeLinear`` at every call (keeping QDQ
  patterns intact), which costs 2x (int8) to 8x (int2) at batch 1 and 5-8 % at batch 1000
  (results/export_sizes.md).

``sparsify`` / ``densify`` are exact inverses on finite tensors (tested bit for bit), except
that ``-0.0`` (what ``kernel * mask`` gives for a pruned negative weight) comes back as ``0.0``.
"""

import ml_dtypes
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from supermask.errors import ConfigError

STORAGES = ("auto", "dense", "sparse")
TERNARY = ("auto", "on", "off")
TERNARY_BITS = (8, 4, 2)
TERNARY_OPS = ("dequantize", "cast")
OPSET_FOR_BITS = {8: 17, 4: 21, 2: 25}  # the first opsets whose DequantizeLinear takes int4 / int2
_PACKED = {4: ml_dtypes.int4, 2: ml_dtypes.int2}
INDEX_BYTES = 8  # int64 linear indices
TERNARY_RTOL = 1e-6  # nonzero magnitudes equal up to float rounding of the rescaling


def check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}. Received: {name}={value!r}")
    return value


def sparsify(array, name):
    """``array`` as a ``SparseTensorProto`` named ``name``: nonzero values + linear int64 indices."""
    array = np.asarray(array)
    flat = array.reshape(-1)
    indices = np.flatnonzero(flat).astype(np.int64)
    values = numpy_helper.from_array(np.ascontiguousarray(flat[indices]), name)
    return helper.make_sparse_tensor(values, numpy_helper.from_array(indices, f"{name}.indices"),
                                     list(array.shape))


def densify(sparse):
    """The dense numpy array a ``SparseTensorProto`` stands for (linear or [nnz, rank] indices)."""
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    shape = tuple(int(d) for d in sparse.dims)
    out = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    if indices.ndim == 2:  # coordinate format
        indices = np.ravel_multi_index(tuple(indices.T), shape) if indices.size else indices.reshape(-1)
    out[indices] = values
    return out.reshape(shape)


def dense_bytes(array):
    return int(np.size(array)) * np.asarray(array).dtype.itemsize


def sparse_bytes(array):
    array = np.asarray(array)
    return int(np.count_nonzero(array)) * (array.dtype.itemsize + INDEX_BYTES)


def choose_storage(array, storage="auto"):
    """``"dense"`` or ``"sparse"``: as forced, or (``auto``) whichever stores fewer bytes."""
    check_choice("storage", storage, STORAGES)
    if storage != "auto":
        return storage
    return "sparse" if sparse_bytes(array) < dense_bytes(array) else "dense"


def initializer(array, name, storage="auto"):
    """``(proto, kind)``: a dense ``TensorProto`` or a ``SparseTensorProto``, as chosen."""
    kind = choose_storage(array, storage)
    if kind == "sparse":
        return sparsify(array, name), kind
    return numpy_helper.from_array(np.ascontiguousarray(array), name), kind


def ternary_scale(kernel, rtol=TERNARY_RTOL):
    """The common magnitude of ``kernel``'s nonzeros, or None if they differ (beyond ``rtol``).

    An all-zero kernel is ternary with scale 1.0.
    """
    magnitudes = np.abs(np.asarray(kernel, dtype=np.float32)[np.asarray(kernel) != 0])
    if magnitudes.size == 0:
        return np.float32(1.0)
    low, high = magnitudes.min(), magnitudes.max()
    if high - low > rtol * high:
        return None
    return np.float32(np.median(magnitudes))  # exactly the common value when all are equal


def to_ternary(kernel):
    """int8 {-1, 0, +1}: the sign of every entry (0 stays 0)."""
    return np.sign(np.asarray(kernel)).astype(np.int8)


def ternary_initializer(kernel, name, storage="auto", bits=8):
    """``(proto, kind, bytes)`` of the {-1, 0, +1} tensor of ``kernel`` with ``bits`` per entry."""
    quantized = to_ternary(kernel)
    if bits == 8:
        proto, kind = initializer(quantized, name, storage)
        return proto, kind, sparse_bytes(quantized) if kind == "sparse" else dense_bytes(quantized)
    if storage == "sparse":
        raise ConfigError(f"--storage sparse cannot hold {bits}-bit ternary kernels (onnxruntime does not "
                          "load sparse int4/int2 initializers). Use --storage auto or --ternary-bits 8.")
    return numpy_helper.from_array(quantized.astype(_PACKED[bits]), name), "dense", -(-quantized.size * bits // 8)


def zero_point(name, bits=8):
    """The scalar zero point 0 of a ``DequantizeLinear`` whose input has ``bits`` per entry."""
    return numpy_helper.from_array(np.zeros((), dtype=np.int8 if bits == 8 else _PACKED[bits]), name)


def use_ternary(layer, kernel, ternary="auto"):
    """The scale to store ``kernel`` ternary with, or None for float32 storage.

    ``auto``: ternary when every nonzero has the same magnitude; ``on``: required (a
    ``ConfigError`` naming the layer otherwise); ``off``: never.
    """
    check_choice("ternary", ternary, TERNARY)
    if ternary == "off":
        return None
    scale = ternary_scale(kernel)
    if scale is None and ternary == "on":
        distinct = np.unique(np.abs(kernel[kernel != 0])).size
        raise ConfigError(
            f"--ternary on needs signed-constant kernels, but layer '{layer}' has {distinct} distinct "
            "nonzero magnitudes. Use --ternary auto (ternary only where possible) or off.")
    return scale


def ternary_tensor(kernel, scale, name, storage="auto", bits=8, op="dequantize"):
    """``kernel`` (float32, already in the graph's layout) as ternary storage that computes the float
    tensor called ``name``: ``(dense initializers, sparse initializers, nodes, kind, bytes)``.

    The {-1, 0, +1} tensor is ``name + "_q"`` and the scale ``name + "_scale"``; the node(s)
    ``DequantizeLinear`` (``op="dequantize"``) or ``Cast`` + ``Mul`` (``op="cast"``) write ``name``.
    """
    quantized, scale_name = f"{name}_q", f"{name}_scale"
    proto, kind, size = ternary_initializer(kernel, quantized, storage, bits)
    dense, sparse = ([], [proto]) if kind == "sparse" else ([proto], [])
    dense.append(numpy_helper.from_array(np.asarray(scale, np.float32), scale_name))
    if op == "cast":  # float(q) * s, folded into float weights by onnxruntime at load
        nodes = [helper.make_node("Cast", [quantized], [f"{name}_sign"], to=TensorProto.FLOAT, name=f"{name}/Cast"),
                 helper.make_node("Mul", [f"{name}_sign", scale_name], [name], name=f"{name}/Mul")]
    else:
        dense.append(zero_point(f"{name}_zero_point", bits))
        nodes = [helper.make_node("DequantizeLinear", [quantized, scale_name, f"{name}_zero_point"], [name],
                                  name=f"{name}/DequantizeLinear")]
    return dense, sparse, nodes, kind, size + 5
