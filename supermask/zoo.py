"""The built-in architectures as plain Keras models; ``supermask.models.build`` converts them
(``supermask.convert.masked`` / ``supermask.convert.supermask``), as it converts your own.

The lottery papers' networks (Frankle & Carbin 2019, Fig. 2; Zhou et al. 2019): ``fc``
(784-300-100-10, "LeNet-300-100") and ``conv2`` / ``conv4`` / ``conv6`` (pairs of 3x3 "same"
convolutions of 64, 128, 256 filters, each pair followed by a 2x2 max-pool, then dense 256-256
and the output). ReLU everywhere but the output (logits); Glorot-normal kernels, one seed per
layer (``seeds.derive_seed(seed, 0)``, ``(seed, 1)``, ... in layer order), zero biases. Layer
names are stable, so weights and masks are plain dicts keyed by them: ``conv1`` .. ``conv6``,
``pool1`` .., ``flatten``, ``fc1``, ``fc2``, ``output``.

The rewinding-era CIFAR-10 networks: ``resnet20`` and ``vgg16``.

Both follow open_lth (facebookresearch/open_lth, commit 2ce732fe), which the papers on late
rewinding (Frankle et al. 2019, "Stabilizing the Lottery Ticket Hypothesis"; 2020, "Linear
Mode Connectivity and the Lottery Ticket Hypothesis") trained with. ``supermask.models``
registers them as built-ins and ``supermask.convert.masked`` turns them into masked models.

``resnet20`` (``models/cifar_resnet.py``, ``cifar_resnet_20``): a 3x3 convolution of 16
filters, BatchNormalization, ReLU; three stages of three basic blocks with 16, 32 and 64
filters (conv3x3 - BN - ReLU - conv3x3 - BN, plus the shortcut, then ReLU); the first block
of stages 2 and 3 has stride 2 and a projection shortcut (1x1 convolution of stride 2 + BN),
the others an identity shortcut; global average pooling; a dense layer to the classes.
Convolutions have no bias. 272 474 trainable parameters for CIFAR-10 (open_lth's
``test_cifar_resnet.py``), 270 896 of them in prunable kernels.

``vgg16`` (``models/cifar_vgg.py``, ``cifar_vgg_16``): 3x3 convolutions (with bias) + BN +
ReLU in the plan 64, 64, M, 128, 128, M, 256 x 3, M, 512 x 3, M, 512 x 3 (M: 2x2 max-pool),
then an average pool over the remaining 2 x 2 map and one dense layer: 14 728 266 trainable
parameters for CIFAR-10 (``test_cifar_vgg.py``). Here the last pool is a global average pool,
the same for 32 x 32 inputs and defined for any other size.

Initialisation as open_lth's defaults: kernels Kaiming-normal (``kaiming_normal_``: normal,
std sqrt(2 / fan_in)), BatchNormalization gamma ~ U[0, 1) and beta 0 (``batchnorm_init
= uniform``). Deviations: biases start at 0 (PyTorch draws them uniformly); BatchNormalization
uses PyTorch's momentum (0.1, Keras's 0.9) and epsilon (1e-5); "same" padding of a stride-2
convolution pads bottom/right like Keras (PyTorch pads both sides by 1), so the function is
the same architecture, not the same numbers as a PyTorch checkpoint.
"""

import keras

from supermask.errors import ConfigError
from supermask.seeds import SeedSequence

VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class _Init:
    """Seeded initialisers, one fresh seed per layer (``seeds.derive_seed(seed, 1)``, ``(seed, 2)``, ...)."""

    def __init__(self, seed):
        self._next = SeedSequence(seed, start=1)

    def kernel(self):
        return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=self._next())

    def gamma(self):
        return keras.initializers.RandomUniform(0.0, 1.0, seed=self._next())


def _conv_bn(x, init, filters, kernel, strides, name, use_bias=False, relu=True):
    padding = "valid" if kernel == 1 else "same"
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
                            kernel_initializer=init.kernel(), name=name)(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=init.gamma(),
                                        name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def resnet20(input_shape=(32, 32, 3), num_classes=10, seed=0, width=16):
    """open_lth's ``cifar_resnet_20`` (see the module docstring) as a Functional model.

    Layer names: ``stem``, ``s<stage>b<block>_conv1`` / ``_conv2`` (each followed by
    ``..._bn``), ``s<stage>b1_shortcut`` (+ ``_bn``) where the shape changes, ``output``.
    """
    init = _Init(seed)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv_bn(inputs, init, width, 3, 1, "stem")
    channels = width
    for stage, filters in enumerate((width, 2 * width, 4 * width), start=1):
        for block in range(1, 4):
            name = f"s{stage}b{block}"
            down = stage > 1 and block == 1
            y = _conv_bn(x, init, filters, 3, 2 if down else 1, f"{name}_conv1")
            y = _conv_bn(y, init, filters, 3, 1, f"{name}_conv2", relu=False)
            shortcut = x
            if down or channels != filters:
                shortcut = _conv_bn(x, init, filters, 1, 2, f"{name}_shortcut", relu=False)
            x = keras.layers.ReLU(name=f"{name}_relu")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))
            channels = filters
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init.kernel(), name="output")(x)
    return keras.Model(inputs, outputs, name="resnet20")


def vgg16(input_shape=(32, 32, 3), num_classes=10, seed=0):
    """open_lth's ``cifar_vgg_16`` with BatchNormalization (see the module docstring).

    Layer names: ``conv1`` .. ``conv13`` (each followed by ``..._bn``), ``pool1`` .. ``pool4``,
    ``output``.
    """
    init = _Init(seed)
    inputs = keras.Input(tuple(input_shape), name="image")
    x, conv, pool = inputs, 0, 0
    for item in VGG16_PLAN:
        if item == "M":
            pool += 1
            x = keras.layers.MaxPooling2D(2, name=f"pool{pool}")(x)
        else:
            conv += 1
            x = _conv_bn(x, init, item, 3, 1, f"conv{conv}", use_bias=True)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init.kernel(), name="output")(x)
    return keras.Model(inputs, outputs, name="vgg16")


# The lottery papers' networks: (filters of each pair of convolutions, hidden dense units).
PAPER_LAYERS = {"fc": ((), (300, 100)), "conv2": ((64,), (256, 256)), "conv4": ((64, 128), (256, 256)),
                "conv6": ((64, 128, 256), (256, 256))}


def paper_model(name, input_shape=(28, 28, 1), num_classes=10, seed=0):
    """The lottery papers' network ``name`` (fc, conv2, conv4, conv6; see the module docstring)
    as a plain ``keras.Sequential`` named ``<name>_model`` for images of ``input_shape`` (H, W, C)."""
    if len(tuple(input_shape)) != 3:
        raise ConfigError(f"input_shape must be (height, width, channels). Received: {input_shape!r}")
    conv_filters, dense_units = PAPER_LAYERS[name]
    glorot = SeedSequence(seed)

    def kernel_init():
        return keras.initializers.GlorotNormal(seed=glorot())

    layers, index = [keras.Input(shape=tuple(input_shape), name="image")], 0
    for filters in conv_filters:
        for _ in range(2):
            index += 1
            layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                              kernel_initializer=kernel_init(), name=f"conv{index}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{index // 2}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate(dense_units, start=1):
        layers.append(keras.layers.Dense(units, activation="relu", kernel_initializer=kernel_init(), name=f"fc{i}"))
    layers.append(keras.layers.Dense(num_classes, kernel_initializer=kernel_init(), name="output"))
    return keras.Sequential(layers, name=f"{name}_model")


def fc(input_shape=(28, 28, 1), num_classes=10, seed=0):
    """LeNet-300-100 (``paper_model``)."""
    return paper_model("fc", input_shape, num_classes, seed)


def conv2(input_shape=(28, 28, 1), num_classes=10, seed=0):
    """conv64-conv64-pool, 256-256-10 (``paper_model``)."""
    return paper_model("conv2", input_shape, num_classes, seed)


def conv4(input_shape=(28, 28, 1), num_classes=10, seed=0):
    """conv64-conv64-pool, conv128-conv128-pool, 256-256-10 (``paper_model``)."""
    return paper_model("conv4", input_shape, num_classes, seed)


def conv6(input_shape=(28, 28, 1), num_classes=10, seed=0):
    """conv4 plus conv256-conv256-pool, 256-256-10 (``paper_model``)."""
    return paper_model("conv6", input_shape, num_classes, seed)
