"""Masked layers: maths, serialisation and errors (run once per KERAS_BACKEND)."""

import keras
import numpy as np
import pytest

from supermask.errors import ConfigError
from supermask.layers import MaskedConv2D, MaskedDense
from tests.layer_harness import check_layer


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_masked_dense_standard_checks(tmp_path):
    check_layer(MaskedDense, {"units": 5, "activation": "relu"}, (4, 3), (4, 5), tmp_path)


def test_masked_conv_standard_checks(tmp_path):
    check_layer(MaskedConv2D, {"filters": 4, "kernel_size": 3, "padding": "same"}, (2, 8, 8, 3),
                (2, 8, 8, 4), tmp_path)
    check_layer(MaskedConv2D, {"filters": 2, "kernel_size": (3, 2), "strides": 2}, (2, 9, 9, 1),
                (2, 4, 4, 2), tmp_path)


def test_masked_dense_computes_with_kernel_times_mask():
    layer = MaskedDense(4, activation="relu")
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    layer.build((None, 3))
    mask = np.array([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], bool)
    layer.set_mask(mask)
    layer.bias.assign(np.arange(4, dtype="float32") / 10)
    kernel = _np(layer.kernel)
    expected = np.maximum(x @ (kernel * mask) + np.arange(4) / 10, 0)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layer.get_mask(), mask)
    np.testing.assert_array_equal(_np(layer.effective_kernel), kernel * mask)


def test_masked_conv_matches_keras_conv_on_masked_kernel():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 7, 3)).astype("float32")
    ours = MaskedConv2D(5, 3, padding="same")
    ours.build(x.shape)
    mask = rng.random(size=(3, 3, 3, 5)) < 0.3
    ours.set_mask(mask)
    ref = keras.layers.Conv2D(5, 3, padding="same")
    ref.build(x.shape)
    ref.set_weights([_np(ours.kernel) * mask, _np(ours.bias)])
    np.testing.assert_allclose(_np(ours(x)), _np(ref(x)), rtol=1e-5, atol=1e-5)


def test_freeze_pruned_uses_stored_values_at_masked_positions():
    layer = MaskedDense(2, use_bias=False, freeze_pruned=True)
    layer.build((None, 2))
    layer.kernel.assign(np.array([[1.0, 2.0], [3.0, 4.0]], "float32"))
    layer.set_mask(np.array([[1, 0], [0, 1]]))
    np.testing.assert_allclose(_np(layer(np.array([[1.0, 1.0]], "float32"))), [[4.0, 6.0]])
    assert layer.get_config()["freeze_pruned"] is True


@pytest.mark.parametrize("mask, message", [
    (np.ones((3, 4)), "must have shape (2, 4)"),
    (np.full((2, 4), 0.5), "only 0 and 1"),
])
def test_bad_masks_are_refused(mask, message):
    layer = MaskedDense(4)
    layer.build((None, 2))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        layer.set_mask(mask)


@pytest.mark.parametrize("make", [
    lambda: MaskedDense(0),
    lambda: MaskedDense(2.5),
    lambda: MaskedConv2D(4, 0),
    lambda: MaskedConv2D(4, 3, padding="circular"),
])
def test_bad_arguments_are_refused(make):
    with pytest.raises(ConfigError, match="Received"):
        make()
