"""The papers' architectures, by name, built from masked layers.

=========  ==========================================================  ==============
name       layers (ReLU everywhere but the output, which gives logits)   paper defaults
=========  ==========================================================  ==============
fc         784-300-100-10 ("LeNet-300-100")                              Adam 1.2e-3
conv2      conv64-conv64-pool, 256-256-10                                Adam 2e-4
conv4      conv64-conv64-pool, conv128-conv128-pool, 256-256-10          Adam 3e-4
conv6      ... conv256-conv256-pool, 256-256-10                          Adam 3e-4
=========  ==========================================================  ==============

Convolutions are 3x3, stride 1, "same" padding; pools are 2x2 max-pools
(Frankle & Carbin 2019, Fig. 2). All use batch size 60 and Glorot-normal kernels.

Layer names are stable so that weights and masks are plain dicts keyed by them:
convolutions ``conv1`` .. ``conv6``, hidden dense layers ``fc1``, ``fc2``, the last
layer ``output``. Only these layers carry prunable kernels.
"""

from dataclasses import dataclass

import keras

from supermask.errors import ConfigError
from supermask.layers import MaskedConv2D, MaskedDense


@dataclass(frozen=True)
class ModelSpec:
    """What a paper trains a given architecture with."""

    name: str
    conv_filters: tuple  # one entry per pair of convolutions, e.g. (64, 128)
    dense_units: tuple  # hidden dense layers
    learning_rate: float
    batch_size: int = 60
    optimizer: str = "adam"
    iterations: int = 50_000  # Frankle & Carbin's training budget


MODELS = {
    "fc": ModelSpec("fc", (), (300, 100), 1.2e-3, iterations=50_000),
    "conv2": ModelSpec("conv2", (64,), (256, 256), 2e-4, iterations=20_000),
    "conv4": ModelSpec("conv4", (64, 128), (256, 256), 3e-4, iterations=25_000),
    "conv6": ModelSpec("conv6", (64, 128, 256), (256, 256), 3e-4, iterations=30_000),
}


def get_spec(name):
    """The ``ModelSpec`` of a model name; unknown names raise ``ConfigError``."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"Unknown model {name!r}. Valid models: {', '.join(MODELS)}."
        ) from None


def build_model(name, input_shape, num_classes=10, seed=0, freeze_pruned=False):
    """Build (uncompiled) model ``name`` for images of ``input_shape`` (H, W, C).

    ``seed`` fixes the Glorot-normal initial kernels: the same seed on the same
    backend gives the same initial weights. Biases start at zero. Returns a
    ``keras.Sequential`` whose prunable layers are named as in the module docstring.
    """
    spec = get_spec(name)
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape must be (height, width, channels). Received: {input_shape!r}")
    init_seeds = iter(range(seed * 1000, seed * 1000 + 100))

    def kernel_init():
        return keras.initializers.GlorotNormal(seed=next(init_seeds))

    layers = [keras.Input(shape=tuple(input_shape), name="image")]
    conv_index = 0
    for filters in spec.conv_filters:
        for _ in range(2):
            conv_index += 1
            layers.append(MaskedConv2D(
                filters, 3, padding="same", activation="relu",
                kernel_initializer=kernel_init(), freeze_pruned=freeze_pruned,
                name=f"conv{conv_index}",
            ))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{conv_index // 2}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate(spec.dense_units, start=1):
        layers.append(MaskedDense(
            units, activation="relu", kernel_initializer=kernel_init(),
            freeze_pruned=freeze_pruned, name=f"fc{i}",
        ))
    layers.append(MaskedDense(
        num_classes, kernel_initializer=kernel_init(), freeze_pruned=freeze_pruned,
        name="output",
    ))
    return keras.Sequential(layers, name=f"{name}_model")


def prunable_layers(model):
    """The layers of ``model`` that own a kernel and a mask, in order, as {name: layer}."""
    return {layer.name: layer for layer in model.layers if hasattr(layer, "mask")}
