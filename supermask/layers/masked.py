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

from supermask import backend
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
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    # --- hooks for subclasses -------------------------------------------------
    def kernel_shape(self, input_shape):
        raise NotImplementedError

    def output_channels(self):
        raise NotImplementedError

    def linear_op(self, inputs, kernel):
        raise NotImplementedError

    def add_bias(self, outputs, bias):
        """``outputs + bias`` (the conv mixins broadcast over channels_first outputs)."""
        return ops.add(outputs, bias)

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
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
        return {**super().get_config(), **config}


class MaskedLayer(KernelLayer):
    """Base class: owns ``kernel``, ``bias`` and ``mask``; subclasses define shapes and the op.

    Subclasses implement ``kernel_shape(input_shape)`` and ``linear_op(inputs, kernel)``.
    The mask is a non-trainable float variable holding exactly 0.0 or 1.0.

    ``kernel_regularizer`` / ``kernel_constraint`` act on the stored kernel, as in Keras's
    ``Dense``: an L2 penalty decays pruned entries too, which never reach the output.
    With ``freeze_pruned`` they would move the frozen weights, so that pair is refused.
    """

    def __init__(self, freeze_pruned=False, **kwargs):
        super().__init__(**kwargs)
        self.freeze_pruned = bool(freeze_pruned)
        if self.freeze_pruned and (self.kernel_regularizer is not None or self.kernel_constraint is not None):
            raise ConfigError(f"Layer '{self.name}': freeze_pruned keeps pruned weights frozen, which a "
                              "kernel_regularizer or kernel_constraint would move; drop one of them.")

    # --- Keras layer API ------------------------------------------------------
    def build(self, input_shape):
        shape = self.kernel_shape(input_shape)
        self.kernel = self.add_weight(
            name="kernel", shape=shape, initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.output_channels(),),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
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
            outputs = self.add_bias(outputs, self.bias)
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


class ConvOp:
    """Mixin: the geometry of a ``rank``-D convolution, as Keras's ``Conv1D`` / ``Conv2D``.

    Kernel ``(*kernel_size, in_channels // groups, filters)``; ``padding`` "valid",
    "same" or (1-D only) "causal"; ``data_format`` "channels_last" (default) or
    "channels_first"; ``dilation_rate`` and ``groups`` as Keras's. The op is the very
    ``keras.ops.conv`` call of Keras's ``BaseConv``, so a converted layer computes what
    the original computed.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ConfigError(f"filters must be a positive integer. Received: filters={filters!r}")
        padding = str(padding).lower()
        valid = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        if padding not in valid:
            raise ConfigError(f"padding must be one of {', '.join(map(repr, valid))}. Received: padding={padding!r}")
        data_format = keras.backend.image_data_format() if data_format is None else str(data_format).lower()
        if data_format not in ("channels_last", "channels_first"):
            raise ConfigError(f"data_format must be 'channels_last' or 'channels_first'. "
                              f"Received: data_format={data_format!r}")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0 \
                or filters % groups:
            raise ConfigError(f"groups must be a positive integer dividing filters={filters}. Received: groups={groups!r}")
        self.filters = int(filters)
        self.kernel_size = _tuple(kernel_size, "kernel_size", self.rank)
        self.strides = _tuple(strides, "strides", self.rank)
        self.dilation_rate = _tuple(dilation_rate, "dilation_rate", self.rank)
        self.padding = padding
        self.data_format = data_format
        self.groups = int(groups)
        self.input_spec = keras.InputSpec(ndim=self.rank + 2)

    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def kernel_shape(self, input_shape):
        channels = input_shape[self._channel_axis()]
        if channels is None or channels % self.groups:
            raise ConfigError(f"Layer '{self.name}': the input's channels ({channels}) must be known and "
                              f"divisible by groups={self.groups}.")
        return (*self.kernel_size, channels // self.groups, self.filters)

    def output_channels(self):
        return self.filters

    def linear_op(self, inputs, kernel):
        padding = self.padding
        if padding == "causal":  # Keras's Conv1D: pad the time axis on the left, then "valid"
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            pads = [[0, 0], [left, 0], [0, 0]] if self.data_format == "channels_last" else [[0, 0], [0, 0], [left, 0]]
            inputs, padding = ops.pad(inputs, pads), "valid"
        return backend.conv(inputs, kernel, strides=list(self.strides), padding=padding,
                            dilation_rate=self.dilation_rate, data_format=self.data_format)

    def add_bias(self, outputs, bias):
        if self.data_format == "channels_last":
            return ops.add(outputs, bias)
        return ops.add(outputs, ops.reshape(bias, (1, self.filters) + (1,) * self.rank))

    def compute_output_shape(self, input_shape):
        def out(size, k, s, d):
            if size is None:
                return None
            span = d * (k - 1) + 1
            return -(-size // s) if self.padding in ("same", "causal") else (size - span) // s + 1

        spatial = input_shape[1:-1] if self.data_format == "channels_last" else input_shape[2:]
        sizes = tuple(out(*args) for args in zip(spatial, self.kernel_size, self.strides, self.dilation_rate))
        if self.data_format == "channels_last":
            return (input_shape[0], *sizes, self.filters)
        return (input_shape[0], self.filters, *sizes)

    def get_config(self):
        config = {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
        }
        return {**super().get_config(), **config}


class Conv1DOp(ConvOp):
    """Mixin: a 1-D convolution, kernel (kw, cin // groups, filters)."""

    rank = 1


class Conv2DOp(ConvOp):
    """Mixin: a 2-D convolution, kernel (kh, kw, cin // groups, filters)."""

    rank = 2


class MaskedDense(DenseOp, MaskedLayer):
    """Dense layer ``activation(inputs @ (kernel * mask) + bias)``.

    Args:
        units: positive int, output size.
        activation, use_bias, kernel_initializer, bias_initializer: as ``keras.layers.Dense``.
        freeze_pruned: keep masked-off kernel entries at their stored value, frozen,
            instead of zero.
    """


class MaskedConv2D(Conv2DOp, MaskedLayer):
    """2-D convolution with a masked kernel of shape (kh, kw, cin // groups, filters).

    Args:
        filters: positive int, number of output channels.
        kernel_size, strides, dilation_rate: int or pair of ints.
        padding: "valid" or "same".
        data_format, groups: as ``keras.layers.Conv2D``.
        Other arguments as ``MaskedDense``.
    """


class MaskedConv1D(Conv1DOp, MaskedLayer):
    """1-D convolution with a masked kernel of shape (kw, cin // groups, filters).

    Args as ``MaskedConv2D`` (ints instead of pairs); ``padding`` may also be "causal".
    """


def _tuple(value, name, rank=2):
    """``value`` (an int or ``rank`` ints, all > 0) as a tuple of ``rank`` ints."""
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * rank
    try:
        value = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        value = ()
    if len(value) != rank or min(value) <= 0:
        what = "a pair of them" if rank == 2 else f"{rank} of them"
        raise ConfigError(f"{name} must be a positive int or {what}. Received: {name}={value!r}")
    return value


def _check_shape(layer, what, got, expected):
    if tuple(got) != tuple(expected):
        raise ConfigError(
            f"Layer '{layer.name}': {what} must have shape {tuple(expected)}. "
            f"Received shape {tuple(got)}."
        )
