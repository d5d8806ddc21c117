"""Small conv builders for the analyses on the 2-core CPU (own models, "inst_models:fn"; benchmarks/analyses.py)."""

from supermask.zoo import resnet20


def resnet20_w4(input_shape=(28, 28, 1), num_classes=10, seed=0):
    """open_lth's ResNet-20 (BatchNorm, 3 stages x 3 basic blocks) at width 4 (filters 4/8/16, not 16/32/64)."""
    return resnet20(input_shape, num_classes, seed, width=4)


def small_conv_bn(input_shape=(28, 28, 1), num_classes=10, seed=0):
    """conv8-BN-ReLU-pool, conv16-BN-ReLU-pool, dense 10: a conv net with BatchNorm small enough for the CPU."""
    import keras

    init = lambda k: keras.initializers.HeNormal(seed=seed * 10 + k)  # noqa: E731
    x = inputs = keras.Input(input_shape)
    for i, filters in enumerate((8, 16)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init(i),
                                name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{i + 1}_bn")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init(9), name="output")(x)
    return keras.Model(inputs, outputs)
