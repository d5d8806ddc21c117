"""Architectures by name: layer names, sizes, seeds, masks as dicts, .keras round-trip."""

import keras
import numpy as np
import pytest

from supermask import masks as M
from supermask.errors import ConfigError
from supermask.models import MODELS, get_spec, prunable_layers
from supermask.models import build

EXPECTED = {  # (input shape, prunable layer names, number of kernel weights)
    "fc": ((28, 28, 1), ["fc1", "fc2", "output"], 784 * 300 + 300 * 100 + 100 * 10),
    "conv2": ((32, 32, 3), ["conv1", "conv2", "fc1", "fc2", "output"],
              27 * 64 + 576 * 64 + 16 * 16 * 64 * 256 + 256 * 256 + 2560),
    "conv4": ((32, 32, 3), ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2", "output"],
              27 * 64 + 576 * 64 + 576 * 128 + 1152 * 128 + 8 * 8 * 128 * 256 + 256 * 256 + 2560),
    "conv6": ((28, 28, 1), ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc1", "fc2", "output"],
              9 * 64 + 576 * 64 + 576 * 128 + 1152 * 128 + 1152 * 256 + 2304 * 256
              + 3 * 3 * 256 * 256 + 256 * 256 + 2560),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_architecture_layers_and_sizes(name):
    shape, names, kernel_weights = EXPECTED[name]
    model = build(name, shape)
    assert list(prunable_layers(model)) == names
    assert sum(k.size for k in M.kernels(M.get_weights(model)).values()) == kernel_weights
    assert tuple(model.outputs[0].shape) == (None, 10)


def test_paper_defaults():
    assert (MODELS["fc"].learning_rate, MODELS["fc"].batch_size) == (1.2e-3, 60)
    assert MODELS["conv2"].learning_rate == 2e-4
    assert MODELS["conv4"].learning_rate == MODELS["conv6"].learning_rate == 3e-4


def test_seed_fixes_initial_weights():
    a = M.get_weights(build("fc", (28, 28, 1), seed=3))
    b = M.get_weights(build("fc", (28, 28, 1), seed=3))
    c = M.get_weights(build("fc", (28, 28, 1), seed=4))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["fc1/kernel"], c["fc1/kernel"])
    std = a["fc1/kernel"].std()
    assert abs(std - np.sqrt(2 / (784 + 300))) < 0.1 * std  # Glorot normal
    assert not a["fc1/bias"].any()


def test_weights_and_masks_round_trip_through_numpy_dicts(tmp_path):
    model = build("conv2", (12, 12, 1))
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(size=v.shape).astype("float32") for k, v in M.get_weights(model).items()}
    masks = {k: rng.random(v.shape) < 0.4 for k, v in M.kernels(weights).items()}
    M.set_weights(model, weights)
    M.set_masks(model, masks)
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for key, value in M.get_weights(restored).items():
        np.testing.assert_array_equal(value, weights[key])
    for key, value in M.get_masks(restored).items():
        np.testing.assert_array_equal(value, masks[key])
    x = rng.normal(size=(3, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(x)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-5)


def test_bad_names_and_shapes_are_refused():
    with pytest.raises(ConfigError, match="Valid models: fc, conv2, conv4, conv6"):
        get_spec("resnet")
    model = build("fc", (28, 28, 1))
    with pytest.raises(ConfigError, match="Valid keys"):
        M.set_weights(model, {"fc9/kernel": np.zeros((1, 1))})
    with pytest.raises(ConfigError, match=r"must have shape \(784, 300\)"):
        M.set_weights(model, {"fc1/kernel": np.zeros((300, 784))})
    with pytest.raises(ConfigError, match="NaN"):
        M.set_weights(model, {"fc2/bias": np.full(100, np.nan)})
    with pytest.raises(ConfigError, match="Valid layers: fc1, fc2, output"):
        M.set_masks(model, {"conv1": np.ones((3, 3))})
    with pytest.raises(ConfigError, match="height, width, channels"):
        build("fc", (784,))


def test_build_model_is_build_under_its_earlier_name_and_argument_order():
    from supermask.models import build_model  # the earlier name, kept for code written against it

    old = build_model("fc", (8, 8, 1), 10, 2, True)  # positional freeze_pruned, as earlier versions took it
    new = build("fc", (8, 8, 1), 10, seed=2, freeze_pruned=True)
    assert all(layer.freeze_pruned for layer in prunable_layers(old).values())
    a, b = M.get_weights(old), M.get_weights(new)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
