"""The plain, backend-free inference ops a Keras model is read into (``supermask.export.reader``).

Masks are gone at this level: a ``Dense`` / ``Conv`` op holds the float32 kernel the layer
computes with at inference (``kernel * mask``). Every tensor is described in Keras's terms,
channels_last and without the batch axis; ``onnx_graph`` decides the ONNX layout. Activations
are ``(name, params)`` pairs, ``params`` a tuple of ``(key, value)`` (see ``ACTIVATIONS``).
"""

from dataclasses import dataclass

import numpy as np

# Activation names with an ONNX form (onnx_graph.activation), as keras.activations.serialize spells them.
ACTIVATIONS = ("linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "sigmoid",
               "hard_sigmoid", "hard_silu", "tanh", "softplus", "softsign", "mish", "exponential", "softmax",
               "log_softmax")
LINEAR = ("linear", ())


@dataclass(frozen=True, eq=False)
class Op:
    """One op: its output is called ``name``; ``inputs`` name the ops it reads (() = the previous op)."""

    name: str
    inputs: tuple = ()


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """``activation(x @ kernel + bias)`` over the last axis; kernel (in, out)."""

    kernel: np.ndarray = None
    bias: np.ndarray | None = None
    activation: tuple = LINEAR


@dataclass(frozen=True, eq=False)
class Conv(Op):
    """channels_last 1-D or 2-D convolution; kernel (*window, in // groups, out); padding
    "valid", "same" or "causal" (1-D: the left pad only)."""

    kernel: np.ndarray = None
    bias: np.ndarray | None = None
    activation: tuple = LINEAR
    strides: tuple = ()
    padding: str = "valid"
    dilations: tuple = ()
    groups: int = 1

    @property
    def rank(self):
        return self.kernel.ndim - 2


@dataclass(frozen=True, eq=False)
class Pool(Op):
    """A 1-D or 2-D window pool ("max" or "avg"; "same" averages over the valid entries only, except
    with ``edge_pad``: Keras's torch backend pads uneven "same" windows with copies of the edge, which
    then count in the average)."""

    kind: str = "max"
    pool_size: tuple = ()
    strides: tuple = ()
    padding: str = "valid"
    edge_pad: bool = False


@dataclass(frozen=True, eq=False)
class GlobalPool(Op):
    """Max or mean over every spatial axis: (..., C) -> (C,), or (1, ..., 1, C) with ``keepdims``."""

    kind: str = "avg"
    keepdims: bool = False


@dataclass(frozen=True, eq=False)
class BatchNorm(Op):
    """Inference BatchNormalization over the last axis: ``x * scale + offset`` per channel."""

    scale: np.ndarray = None
    offset: np.ndarray = None


@dataclass(frozen=True, eq=False)
class Merge(Op):
    """Element-wise ``kind`` ("add", "subtract", "multiply", "average", "maximum", "minimum") of
    equally shaped inputs."""

    kind: str = "add"


@dataclass(frozen=True, eq=False)
class Concat(Op):
    """Keras's Concatenate along ``axis`` (counting the batch axis as 0, so >= 1)."""

    axis: int = -1


@dataclass(frozen=True, eq=False)
class Flatten(Op):
    """Keras's Flatten: row-major over the channels_last shape."""


@dataclass(frozen=True, eq=False)
class Reshape(Op):
    """Keras's Reshape to ``shape`` (no batch axis, every size known), row-major channels_last."""

    shape: tuple = ()


@dataclass(frozen=True, eq=False)
class Pad(Op):
    """Zero padding of the spatial axes: one ``(before, after)`` per axis."""

    pads: tuple = ()


@dataclass(frozen=True, eq=False)
class Activation(Op):
    """An activation function on its own (an ``Activation`` / ``ReLU`` / ``ELU`` ... layer)."""

    activation: tuple = LINEAR


@dataclass(frozen=True, eq=False)
class PReLU(Op):
    """``x if x > 0 else alpha * x``; ``alpha`` channels_last, broadcast over the input (no batch axis)."""

    alpha: np.ndarray = None


KERNEL_OPS = (Dense, Conv)


def op_kind(op):
    """"dense", "conv1d" or "conv2d": how the report names a kernel op."""
    return "dense" if isinstance(op, Dense) else f"conv{op.rank}d"


@dataclass(frozen=True, eq=False)
class Stripped:
    """A model as plain ops in an order that computes every input before its use. ``input_shape``
    excludes the batch axis, e.g. (28, 28, 1). An op's output is called by its ``name``; its
    ``inputs`` name the ops it reads (``input_name`` for the model's input); the ``output`` op's
    output is the model's."""

    name: str
    input_name: str
    input_shape: tuple
    ops: tuple
    output: str = ""  # the op whose output is the model's ("": the last one)

    def kernel_ops(self):
        """The ops that carry a kernel (Dense and Conv), in order."""
        return [op for op in self.ops if isinstance(op, KERNEL_OPS)]

    def densities(self):
        """``{layer: fraction of nonzero kernel entries}`` of the exported kernels."""
        return {op.name: float(np.count_nonzero(op.kernel)) / op.kernel.size for op in self.kernel_ops()}
