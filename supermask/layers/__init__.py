"""Keras layers of supermask, registered for ``.keras`` serialisation."""

import keras

from supermask.layers.masked import KernelLayer, MaskedConv1D, MaskedConv2D, MaskedDense, MaskedLayer
from supermask.layers.supermask import SupermaskConv1D, SupermaskConv2D, SupermaskDense, SupermaskLayer
from supermask.settings.supermask import INFERENCE_MODES, LEARNERS

for _cls in (MaskedDense, MaskedConv1D, MaskedConv2D, SupermaskDense, SupermaskConv1D, SupermaskConv2D):
    keras.saving.register_keras_serializable(package="supermask")(_cls)

__all__ = [
    "KernelLayer", "MaskedLayer", "MaskedDense", "MaskedConv1D", "MaskedConv2D",
    "SupermaskLayer", "SupermaskDense", "SupermaskConv1D", "SupermaskConv2D", "LEARNERS", "INFERENCE_MODES",
]
