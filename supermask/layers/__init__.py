"""Keras layers of supermask, registered for ``.keras`` serialisation."""

import keras

from supermask.layers.masked import MaskedConv2D, MaskedDense, MaskedLayer

for _cls in (MaskedDense, MaskedConv2D):
    keras.saving.register_keras_serializable(package="supermask")(_cls)

__all__ = ["MaskedLayer", "MaskedDense", "MaskedConv2D"]
