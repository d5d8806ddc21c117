"""Where the Keras backends differ for us, with the engine's per-backend modules.

Everything else in supermask is written with ``keras.ops`` and runs unchanged on
TensorFlow, JAX and PyTorch; what differs is how a training step is best compiled:
here for Keras ``fit`` (the reference engine and benchmarks), and in
``supermask.engine.{jax,tensorflow,torch}`` for the compiled engine.
"""

import keras

# Steps fused into one compiled call where the backend supports it (PyTorch requires 1).
_STEPS_PER_EXECUTION = {"jax": 25, "tensorflow": 25, "torch": 1}
# XLA for JAX and TensorFlow; torch.compile costs more to compile than it saves here.
_JIT_COMPILE = {"jax": True, "tensorflow": True, "torch": False}


def name():
    """The active Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def steps_per_execution():
    """How many training steps one compiled call may run."""
    return _STEPS_PER_EXECUTION.get(name(), 1)


def jit_compile():
    """Whether ``model.compile`` should use XLA / jit."""
    return _JIT_COMPILE.get(name(), False)


def conv(inputs, kernel, strides, padding, dilation_rate, data_format):
    """``keras.ops.conv`` (groups from the channel counts, as there), without two needless copies
    on PyTorch.

    Keras's torch ``conv`` turns a channels-last input into channels-first with ``permute`` +
    ``contiguous`` (a copy), then back into channels-last *memory* for oneDNN (a second copy,
    undoing the first), and autograd copies the gradients back the same way: on a 2-core CPU
    that is about a fifth of a ResNet-20 step. For a 2D channels-last convolution on PyTorch
    this runs the same ``torch.nn.functional.conv2d`` on the same tensors (the input a
    channels-first *view* of the channels-last memory, the kernel in channels-last memory,
    Keras's "same" padding), so the results are Keras's, bit for bit; every other case (mixed
    dtypes included) is
    ``keras.ops.conv`` itself.
    """
    if (name() != "torch" or data_format != "channels_last" or len(inputs.shape) != 4 or padding == "causal"
            or keras.backend.standardize_dtype(inputs.dtype) != keras.backend.standardize_dtype(kernel.dtype)):
        return keras.ops.conv(inputs, kernel, strides=strides, padding=padding, dilation_rate=dilation_rate,
                              data_format=data_format)
    import torch  # lazy: PyTorch is an optional backend

    strides, dilation_rate = _pair(strides), _pair(dilation_rate)
    x = torch.as_tensor(inputs).permute(0, 3, 1, 2)  # (B, C, H, W), a view: the memory stays channels-last
    if not x.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.as_tensor(kernel).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    pad = 0
    if padding == "same":  # Keras's torch rule: symmetric where it can, else pad the input (extra at the end)
        pads = [_same_padding(x.shape[2 + i], w.shape[2 + i], strides[i], dilation_rate[i]) for i in range(2)]
        if all(a == b for a, b in pads):
            pad = [a for a, _ in pads]
        else:
            x = torch.nn.functional.pad(x, (*pads[1], *pads[0]))
    out = torch.nn.functional.conv2d(x, w, stride=strides, padding=pad, dilation=dilation_rate,
                                     groups=x.shape[1] // w.shape[1])
    return out.permute(0, 2, 3, 1)


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def _same_padding(length, kernel, stride, dilation):
    """(before, after) padding of one axis for "same" output, as Keras's torch backend computes it."""
    effective = (kernel - 1) * dilation + 1
    if stride == 1:
        total = effective - 1
    else:
        total = max(0, ((length + stride - 1) // stride - 1) * stride + effective - length)
    return total // 2, total - total // 2
