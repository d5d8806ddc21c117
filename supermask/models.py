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

Each architecture is built from masked layers (``kind="masked"``: trainable kernels,
fixed masks; lottery tickets) or supermask layers (``kind="supermask"``: frozen
kernels, learned masks; Zhou et al. 2019 and Ramanujan et al. 2020). The same ``seed``
gives both kinds the same initial kernels.
"""

import hashlib
from dataclasses import dataclass

import keras

from supermask.errors import ConfigError
from supermask.layers import MaskedConv2D, MaskedDense, SupermaskConv2D, SupermaskDense, SupermaskLayer


KINDS = ("masked", "supermask")
# Arguments of ``SupermaskLayer`` that ``build_model(kind="supermask", supermask=...)`` accepts.
SUPERMASK_OPTIONS = ("learner", "k", "signed_constant", "dynamic_scaling", "inference_mode",
                     "score_initializer", "score_regularizer", "use_bias")


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


def derive_seed(seed, index):
    """The seed of a model's ``index``-th random part (a kernel initialiser, a mask sampler).

    ``seed * 1000 + index`` while that is below 2**31 (every seed up to 2 147 482: the
    seeds all earlier results used), else a SHA-256 mix of both folded into [1, 2**31):
    every backend's seed generator takes it (PyTorch's needs int32), for any seed in
    [0, 2**32).
    """
    plain = int(seed) * 1000 + int(index)
    if plain < 2**31:
        return plain
    digest = hashlib.sha256(f"{int(seed)}:{int(index)}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "little") % (2**31 - 1)


def build_model(name, input_shape, num_classes=10, seed=0, freeze_pruned=False, kind="masked",
                supermask=None):
    """Build (uncompiled) model ``name`` for images of ``input_shape`` (H, W, C).

    ``seed`` fixes the Glorot-normal initial kernels: the same seed on the same
    backend gives the same initial weights, whatever ``kind``. Biases start at zero.
    Returns a ``keras.Sequential`` whose prunable layers are named as in the module
    docstring.

    Args:
        kind: ``"masked"`` (``MaskedDense`` / ``MaskedConv2D``) or ``"supermask"``
            (``SupermaskDense`` / ``SupermaskConv2D``: frozen kernels, trainable scores).
        freeze_pruned: masked layers only (see ``MaskedLayer``).
        supermask: supermask layers only: a dict of ``SupermaskLayer`` options, any of
            ``SUPERMASK_OPTIONS`` (e.g. ``{"learner": "edge-popup", "k": 0.5}``). Each
            layer's mask-sampling seed (and default score init) is derived from ``seed``.
    """
    from supermask.config import check_seed

    spec = get_spec(name)
    check_seed(seed)
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape must be (height, width, channels). Received: {input_shape!r}")
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    if kind == "masked":
        if supermask:
            raise ConfigError(f"supermask options need kind='supermask'. Received: kind={kind!r}")

        def dense(units, index, **kwargs):
            return MaskedDense(units, freeze_pruned=freeze_pruned, **kwargs)

        def conv(filters, index, **kwargs):
            return MaskedConv2D(filters, 3, padding="same", freeze_pruned=freeze_pruned, **kwargs)
    else:
        if freeze_pruned:
            raise ConfigError("freeze_pruned applies to kind='masked' only. Received: kind='supermask'")
        options = dict(supermask or {})
        unknown = sorted(set(options) - set(SUPERMASK_OPTIONS))
        if unknown:
            raise ConfigError(
                f"Unknown supermask option(s) {', '.join(unknown)}. Valid options: {', '.join(SUPERMASK_OPTIONS)}."
            )

        def dense(units, index, **kwargs):
            return SupermaskDense(units, seed=derive_seed(seed, 500 + index), **options, **kwargs)

        def conv(filters, index, **kwargs):
            return SupermaskConv2D(filters, 3, padding="same", seed=derive_seed(seed, 500 + index),
                                   **options, **kwargs)

    init_seeds = iter(range(100))

    def kernel_init():
        return keras.initializers.GlorotNormal(seed=derive_seed(seed, next(init_seeds)))

    layers = [keras.Input(shape=tuple(input_shape), name="image")]
    conv_index = 0
    for filters in spec.conv_filters:
        for _ in range(2):
            conv_index += 1
            layers.append(conv(filters, conv_index, activation="relu", kernel_initializer=kernel_init(),
                               name=f"conv{conv_index}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{conv_index // 2}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate(spec.dense_units, start=1):
        layers.append(dense(units, conv_index + i, activation="relu", kernel_initializer=kernel_init(),
                            name=f"fc{i}"))
    layers.append(dense(num_classes, conv_index + len(spec.dense_units) + 1,
                        kernel_initializer=kernel_init(), name="output"))
    return keras.Sequential(layers, name=f"{name}_model")


def prunable_layers(model):
    """The layers of ``model`` that own a kernel and a mask (masked or supermask), in order,
    as {name: layer}."""
    return {layer.name: layer for layer in model.layers if hasattr(layer, "inference_mask")}


def supermask_layers(model):
    """The supermask layers of ``model``, in order, as {name: layer}."""
    return {layer.name: layer for layer in model.layers if isinstance(layer, SupermaskLayer)}


def set_inference_mode(model, mode):
    """Set ``inference_mode`` ("deterministic" or "sampled") of every supermask layer.

    If any mode changes, also drops the model's compiled predict/evaluate functions, so
    that a compiled model (JAX, TensorFlow) retraces with the new mode.
    """
    from supermask.layers.supermask import check_inference_mode

    layers = supermask_layers(model).values()
    modes = [check_inference_mode(mode, layer.learner) for layer in layers]
    if all(layer.inference_mode == m for layer, m in zip(layers, modes)):
        return
    for layer, m in zip(layers, modes):
        layer.inference_mode = m
    model.test_function = None
    model.predict_function = None
