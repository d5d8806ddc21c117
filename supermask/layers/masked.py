"""Masked layers: a kernel, a bias and a fixed 0/1 mask the same shape as the kernel.

The layer computes with the *effective kernel* ``kernel * mask``. Because the mask
multiplies the kernel inside the forward pass, masked-off entries receive an exactly
zero gradient, so with optimisers such as Adam or SGD (no weight decay) they stay
bit-identical through training: the stored kernel keeps the value it was given (for
example its initial value), which is what lottery-ticket experiments need.

``freeze_pruned=True`` changes what a masked-off entry means: instead of being
multiplied to zero it keeps its stored value, frozen (zero gradient). This implements
the "Mask-0" actions of Zhou et al. (2019), e.g. pruned weights frozen at their
initial values.

``MaskedDense`` and ``MaskedConv2D`` share one base class; the convolution is a
``linear_op`` hook, so the masking rule is written once. The geometry (shapes, the
op, validation, config) lives in the ``DenseOp`` / ``Conv2DOp`` mixins and the common
arguments in ``KernelLayer``, which the supermask layers (``supermask.layers.supermask``)
reuse with their own masking rule.

Every layer with a kernel provides ``inference_kernel()`` (float32 numpy: the kernel
the layer computes with at inference) and ``inference_mask()`` (bool numpy), which
is all an exporter needs besides ``bias``.
"""

import keras
import numpy as np
from keras import ops

from supermask.errors import ConfigError


class KernelLayer(keras.Layer):
    """Shared arguments of our kernel layers: activation, bias and initialisers.

    Subclasses implement ``kernel_shape(input_shape)``, ``output_channels()`` and
    ``linear_op(inputs, kernel)`` (the ``DenseOp`` / ``Conv2DOp`` mixins do), and
    ``inference_kernel()`` / ``inference_mask()``.
    """

    def __init__(
        self,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_normal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    # --- hooks for subclasses -------------------------------------------------
    def kernel_shape(self, input_shape):
        raise NotImplementedError

    def output_channels(self):
        raise NotImplementedError

    def linear_op(self, inputs, kernel):
        raise NotImplementedError

    def inference_kernel(self):
        raise NotImplementedError

    def inference_mask(self):
        raise NotImplementedError

    def get_config(self):
        config = {
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
        return {**super().get_config(), **config}


class MaskedLayer(KernelLayer):
    """Base class: owns ``kernel``, ``bias`` and ``mask``; subclasses define shapes and the op.

    Subclasses implement ``kernel_shape(input_shape)`` and ``linear_op(inputs, kernel)``.
    The mask is a non-trainable float variable holding exactly 0.0 or 1.0.
    """

    def __init__(self, freeze_pruned=False, **kwargs):
        super().__init__(**kwargs)
        self.freeze_pruned = bool(freeze_pruned)

    # --- Keras layer API ------------------------------------------------------
    def build(self, input_shape):
        shape = self.kernel_shape(input_shape)
        self.kernel = self.add_weight(
            name="kernel", shape=shape, initializer=self.kernel_initializer
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.output_channels(),),
                initializer=self.bias_initializer,
            )
        else:
            self.bias = None
        self.mask = self.add_weight(
            name="mask", shape=shape, initializer="ones", trainable=False
        )

    @property
    def effective_kernel(self):
        """The kernel the layer computes with: ``kernel * mask`` (see module docstring)."""
        if self.freeze_pruned:
            # ones_like rather than 1.0: no Python number becomes a device tensor in a step
            # (a CUDA graph cannot capture that host-to-device copy).
            mask = ops.convert_to_tensor(self.mask)
            frozen = ops.stop_gradient(self.kernel) * (ops.ones_like(mask) - mask)
            return self.kernel * self.mask + frozen
        return self.kernel * self.mask

    def call(self, inputs):
        outputs = self.linear_op(inputs, self.effective_kernel)
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs)

    def get_config(self):
        return {**super().get_config(), "freeze_pruned": self.freeze_pruned}

    # --- numpy helpers --------------------------------------------------------
    def set_mask(self, mask):
        """Load a mask (bool or 0/1 array of the kernel's shape)."""
        mask = np.asarray(mask)
        _check_shape(self, "mask", mask.shape, tuple(self.kernel.shape))
        if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
            raise ConfigError(
                f"Layer '{self.name}': a mask must hold only 0 and 1. "
                f"Received values in [{mask.min()}, {mask.max()}]."
            )
        self.mask.assign(mask.astype(self.mask.dtype))

    def get_mask(self):
        """The mask as a numpy bool array of the kernel's shape."""
        return np.asarray(keras.ops.convert_to_numpy(self.mask)) > 0.5

    def inference_mask(self):
        """The mask used at inference as a numpy bool array (the same as ``get_mask``)."""
        return self.get_mask()

    def inference_kernel(self):
        """The kernel used at inference as a float32 numpy array (what an exporter folds in)."""
        return np.asarray(keras.ops.convert_to_numpy(self.effective_kernel), dtype=np.float32)


class DenseOp:
    """Mixin: the geometry of a dense layer (``units``; ``inputs @ kernel``)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ConfigError(f"units must be a positive integer. Received: units={units!r}")
        self.units = int(units)
        self.input_spec = keras.InputSpec(min_ndim=2)

    def kernel_shape(self, input_shape):
        return (input_shape[-1], self.units)

    def output_channels(self):
        return self.units

    def linear_op(self, inputs, kernel):
        return ops.matmul(inputs, kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Conv2DOp:
    """Mixin: the geometry of a channels-last 2-D convolution, kernel (kh, kw, cin, filters)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ConfigError(f"filters must be a positive integer. Received: filters={filters!r}")
        padding = str(padding).lower()
        if padding not in ("valid", "same"):
            raise ConfigError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.input_spec = keras.InputSpec(ndim=4)

    def kernel_shape(self, input_shape):
        return (*self.kernel_size, input_shape[-1], self.filters)

    def output_channels(self):
        return self.filters

    def linear_op(self, inputs, kernel):
        return ops.conv(
            inputs, kernel, strides=self.strides, padding=self.padding,
            data_format="channels_last",
        )

    def compute_output_shape(self, input_shape):
        def out(size, k, s):
            if size is None:
                return None
            return -(-size // s) if self.padding == "same" else (size - k) // s + 1

        n, h, w, _ = input_shape
        kh, kw = self.kernel_size
        sh, sw = self.strides
        return (n, out(h, kh, sh), out(w, kw, sw), self.filters)

    def get_config(self):
        config = {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
        }
        return {**super().get_config(), **config}


class MaskedDense(DenseOp, MaskedLayer):
    """Dense layer ``activation(inputs @ (kernel * mask) + bias)``.

    Args:
        units: positive int, output size.
        activation, use_bias, kernel_initializer, bias_initializer: as ``keras.layers.Dense``.
        freeze_pruned: keep masked-off kernel entries at their stored value, frozen,
            instead of zero.
    """


class MaskedConv2D(Conv2DOp, MaskedLayer):
    """2-D convolution (channels_last) with a masked kernel of shape (kh, kw, cin, filters).

    Args:
        filters: positive int, number of output channels.
        kernel_size: int or pair of ints.
        strides: int or pair of ints.
        padding: "valid" or "same".
        Other arguments as ``MaskedDense``.
    """


def _pair(value, name):
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) <= 0:
        raise ConfigError(f"{name} must be a positive int or a pair of them. Received: {name}={value!r}")
    return value


def _check_shape(layer, what, got, expected):
    if tuple(got) != tuple(expected):
        raise ConfigError(
            f"Layer '{layer.name}': {what} must have shape {tuple(expected)}. "
            f"Received shape {tuple(got)}."
        )
