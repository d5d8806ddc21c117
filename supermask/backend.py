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
