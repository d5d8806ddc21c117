"""Supermask layers: straight-through gradients, sampling, inference modes, DWR, serialisation
(run once per KERAS_BACKEND)."""

import keras
import numpy as np
import pytest
from keras import ops

from supermask import masks as M
from supermask.errors import ConfigError
from supermask.layers import MaskedDense, SupermaskConv2D, SupermaskDense
from supermask.layers.ste import keep_count, top_k_mask
from supermask.models import build as build_model
from supermask.models import prunable_layers, set_inference_mode, supermask_layers
from tests.layer_harness import check_layer


def _np(x):
    return ops.convert_to_numpy(x)


def _built(units=4, inputs=3, **kwargs):
    layer = SupermaskDense(units, seed=kwargs.pop("seed", 7), **kwargs)
    layer.build((None, inputs))
    return layer


def _grads(layer, x, c, training=True):
    """{variable name: d sum(layer(x) * c) / d variable} for the float variables, via stateless_call."""
    variables = layer.trainable_variables + layer.non_trainable_variables
    n_trainable = len(layer.trainable_variables)
    values = [_np(v) for v in variables]
    floats = [i for i, v in enumerate(values) if v.dtype == np.float32]
    names = [variables[i].path.split("/")[-1] for i in floats]

    def loss(float_values, convert):
        full = [convert(v) for v in values]
        for i, v in zip(floats, float_values):
            full[i] = v
        y, _ = layer.stateless_call(full[:n_trainable], full[n_trainable:], convert(x), training=training)
        return ops.sum(y * convert(c))

    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        grads = jax.grad(lambda fv: loss(fv, jnp.asarray))([jnp.asarray(values[i]) for i in floats])
    elif backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(values[i]) for i in floats]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            out = loss(tensors, tf.convert_to_tensor)
        grads = tape.gradient(out, tensors, unconnected_gradients="zero")
    else:
        import torch

        tensors = [torch.tensor(values[i], requires_grad=True) for i in floats]
        loss(tensors, torch.as_tensor).backward()
        grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in tensors]
    return {name: _np(g) for name, g in zip(names, grads)}


# --- the standard layer checks -----------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"units": 5, "activation": "relu", "seed": 3},
    {"units": 5, "learner": "edge-popup", "k": 0.3, "dynamic_scaling": True, "seed": 3},
    {"units": 5, "signed_constant": True, "use_bias": False, "seed": 3},
])
def test_supermask_dense_standard_checks(tmp_path, kwargs):
    check_layer(SupermaskDense, kwargs, (4, 3), (4, 5), tmp_path)


def test_supermask_conv_standard_checks(tmp_path):
    check_layer(SupermaskConv2D, {"filters": 4, "kernel_size": 3, "padding": "same", "seed": 1},
                (2, 8, 8, 3), (2, 8, 8, 4), tmp_path)
    check_layer(SupermaskConv2D, {"filters": 2, "kernel_size": (3, 2), "strides": 2, "learner": "edge_popup",
                                  "signed_constant": True, "seed": 2}, (2, 9, 9, 1), (2, 4, 4, 2), tmp_path)


def test_variables_and_config():
    layer = _built(learner="bernoulli")
    assert [v.path.split("/")[-1] for v in layer.trainable_weights] == ["scores"]
    assert sorted(v.path.split("/")[-1] for v in layer.non_trainable_weights) == ["bias", "kernel"]
    assert not _np(layer.scores).any()  # Zhou et al.: scores 0, p = 0.5
    assert not _np(layer.bias).any()  # frozen zero bias
    config = layer.get_config()
    assert config["seed"] == 7 and isinstance(config["seed"], int)
    assert isinstance(SupermaskDense(3).get_config()["seed"], int)  # None -> a drawn int
    bound = 1 / np.sqrt(3)  # edge-popup: Kaiming uniform (a = sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    scores = _np(_built(units=200, learner="edge-popup").scores)
    assert np.abs(scores).max() <= bound and np.abs(scores).max() > 0.9 * bound


# --- gradients -----------------------------------------------------------------------------
@pytest.mark.parametrize("learner", ["bernoulli", "edge-popup"])
def test_straight_through_gradient_reaches_only_the_scores(learner):
    rng = np.random.default_rng(0)
    layer = _built(units=4, inputs=3, learner=learner)
    layer.scores.assign(rng.normal(size=(3, 4)).astype("float32"))
    layer.bias.assign(rng.normal(size=(4,)).astype("float32"))
    x = rng.normal(size=(5, 3)).astype("float32")
    c = rng.normal(size=(5, 4)).astype("float32")
    grads = _grads(layer, x, c)
    scores, kernel = _np(layer.scores), _np(layer.kernel)
    d_mask = (x.T @ c) * kernel  # d sum(c * (x @ (W * m))) / d m: the same for any sampled m
    if learner == "bernoulli":
        p = 1 / (1 + np.exp(-scores))
        expected = d_mask * p * (1 - p)  # straight through to p = sigmoid(scores)
    else:
        expected = d_mask * np.sign(scores)  # straight through to |scores|
    np.testing.assert_allclose(grads["scores"], expected, rtol=1e-4, atol=1e-6)
    assert not grads["kernel"].any() and not grads["bias"].any()


def test_dwr_gradient_is_finite_and_reaches_the_scores():
    layer = _built(dynamic_scaling=True)
    rng = np.random.default_rng(1)
    grads = _grads(layer, rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 4)).astype("float32"))
    assert np.isfinite(grads["scores"]).all() and grads["scores"].any()
    assert not grads["kernel"].any()


# --- sampling and inference ----------------------------------------------------------------
def test_training_samples_a_fresh_mask_each_call_reproducibly_from_the_seed():
    x = np.eye(50, dtype="float32")  # identity input: the output is the masked kernel

    def draws(seed, n=4):
        layer = SupermaskDense(30, use_bias=False, seed=seed)
        layer.build((None, 50))
        layer.kernel.assign(np.ones((50, 30), "float32"))
        return [_np(layer(x, training=True)) for _ in range(n)]

    a, b, other = draws(1), draws(1), draws(2)
    for i in range(len(a)):
        assert set(np.unique(a[i])) <= {0.0, 1.0}
        assert 0.3 < a[i].mean() < 0.7  # p = 0.5
        np.testing.assert_array_equal(a[i], b[i])  # same seed, same sequence
        for j in range(i):
            assert not np.array_equal(a[i], a[j])  # a new mask at every call
    assert not np.array_equal(a[0], other[0])


def test_deterministic_inference_is_scores_above_zero_and_repeatable():
    rng = np.random.default_rng(2)
    layer = _built(units=6, inputs=5, activation="relu")
    scores = rng.normal(size=(5, 6)).astype("float32")
    layer.scores.assign(scores)
    layer.bias.assign(rng.normal(size=(6,)).astype("float32"))
    x = rng.normal(size=(8, 5)).astype("float32")
    kernel, bias = _np(layer.kernel), _np(layer.bias)
    expected = np.maximum(x @ (kernel * (scores > 0)) + bias, 0)
    for _ in range(3):
        np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_np(layer(x, training=False)), expected, rtol=1e-5, atol=1e-6)
    mask = layer.inference_mask()
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, scores > 0)
    np.testing.assert_array_equal(layer.inference_kernel(), kernel * (scores > 0))
    assert layer.inference_kernel().dtype == np.float32


def test_sampled_inference_mode_draws_at_every_call():
    layer = _built(units=30, inputs=50, inference_mode="sampled", use_bias=False)
    x = np.eye(50, dtype="float32")
    a, b = _np(layer(x)), _np(layer(x))
    assert not np.array_equal(a, b)
    # The exporter's view stays the deterministic mask.
    np.testing.assert_array_equal(layer.inference_mask(), _np(layer.scores) > 0)


def test_edge_popup_keeps_the_top_k_magnitudes_in_training_and_inference():
    rng = np.random.default_rng(3)
    layer = _built(units=7, inputs=9, learner="edge-popup", k=0.3, use_bias=False)
    scores = rng.normal(size=(9, 7)).astype("float32")
    layer.scores.assign(scores)
    keep = keep_count(63, 0.3)
    assert keep == 63 - int(0.7 * 63)
    top = np.zeros(63, bool)
    top[np.argsort(np.abs(scores).reshape(-1))[-keep:]] = True
    np.testing.assert_array_equal(layer.inference_mask(), top.reshape(9, 7))
    x = np.eye(9, dtype="float32")
    expected = _np(layer.kernel) * top.reshape(9, 7)
    for training in (True, False, True):
        np.testing.assert_allclose(_np(layer(x, training=training)), expected, rtol=1e-6)
    assert layer.expected_density() == keep / 63


def test_top_k_mask_counts():
    values = ops.convert_to_tensor(np.abs(np.random.default_rng(4).normal(size=(3, 3, 4, 5))).astype("float32"))
    for k, keep in [(1.0, 180), (0.5, 90), (0.01, 180 - int(0.99 * 180))]:
        assert _np(top_k_mask(values, k)).sum() == keep


def test_dynamic_weight_rescaling_scales_by_total_over_kept():
    rng = np.random.default_rng(5)
    layer = _built(units=4, inputs=6, dynamic_scaling=True, use_bias=False)
    scores = rng.normal(size=(6, 4)).astype("float32")
    layer.scores.assign(scores)
    mask = scores > 0
    expected = _np(layer.kernel) * mask * (mask.size / mask.sum())
    np.testing.assert_allclose(layer.inference_kernel(), expected, rtol=1e-6)
    x = np.eye(6, dtype="float32")
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-6)
    # Training: the scale follows the sampled mask.
    out = _np(layer(x, training=True))
    kept = (out != 0).sum()
    np.testing.assert_allclose(out[out != 0], (_np(layer.kernel) * 24 / kept)[out != 0], rtol=1e-5)


def test_signed_constant_weights_are_plus_minus_the_layer_std():
    init = keras.initializers.GlorotNormal(seed=11)
    plain = SupermaskDense(300, kernel_initializer=init, seed=1)
    plain.build((None, 784))
    signed = SupermaskDense(300, kernel_initializer=keras.initializers.GlorotNormal(seed=11),
                            signed_constant=True, seed=1)
    signed.build((None, 784))
    drawn, kernel = _np(plain.kernel), _np(signed.kernel)
    np.testing.assert_array_equal(np.sign(kernel), np.sign(drawn))
    np.testing.assert_allclose(np.abs(kernel), drawn.std(), rtol=1e-5)
    assert abs(drawn.std() - np.sqrt(2 / (784 + 300))) < 0.02 * drawn.std()  # ~ the Glorot sigma


# --- models and numpy dicts ----------------------------------------------------------------
def test_supermask_models_share_names_and_initial_kernels_with_masked_ones(tmp_path):
    masked = build_model("fc", (8, 8, 1), seed=4)
    model = build_model("fc", (8, 8, 1), seed=4, kind="supermask",
                        supermask={"learner": "edge-popup", "k": 0.4, "dynamic_scaling": True})
    assert list(prunable_layers(model)) == list(prunable_layers(masked)) == list(supermask_layers(model))
    weights, masked_weights = M.get_weights(model), M.get_weights(masked)
    assert set(weights) == set(masked_weights) | {f"{n}/scores" for n in prunable_layers(model)}
    for key, value in masked_weights.items():
        np.testing.assert_array_equal(weights[key], value)
    for name, mask in M.get_masks(model).items():
        assert mask.dtype == bool and mask.sum() == keep_count(mask.size, 0.4)
    with pytest.raises(ConfigError, match="learns its mask from scores"):
        M.set_masks(model, {"fc1": np.ones((64, 300))})


@pytest.mark.parametrize("options", [{}, {"learner": "edge-popup", "signed_constant": True}])
def test_supermask_model_keras_round_trip(tmp_path, options):
    model = build_model("fc", (8, 8, 1), seed=1, kind="supermask", supermask=options)
    rng = np.random.default_rng(6)
    scores = {k: rng.normal(size=v.shape).astype("float32") for k, v in M.get_weights(model).items()
              if k.endswith("/scores")}
    M.set_weights(model, scores)
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for key, value in M.get_weights(restored).items():
        np.testing.assert_array_equal(value, M.get_weights(model)[key])
    for name, layer in supermask_layers(restored).items():
        original = supermask_layers(model)[name]
        np.testing.assert_array_equal(layer.inference_mask(), original.inference_mask())
        np.testing.assert_array_equal(layer.inference_kernel(), original.inference_kernel())
        assert layer.get_config() == original.get_config()
    x = rng.random((3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(_np(restored(x)), _np(model(x)), rtol=1e-5, atol=1e-5)


def test_set_inference_mode_switches_every_layer():
    model = build_model("fc", (8, 8, 1), kind="supermask")
    set_inference_mode(model, "sampled")
    assert {layer.inference_mode for layer in supermask_layers(model).values()} == {"sampled"}
    edge = build_model("fc", (8, 8, 1), kind="supermask", supermask={"learner": "edge-popup"})
    with pytest.raises(ConfigError, match="needs learner='bernoulli'"):
        set_inference_mode(edge, "sampled")


# --- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"learner": "lottery"}, "learner must be one of 'bernoulli', 'edge-popup'. Received: learner='lottery'"),
    ({"k": 1.5}, "k must be in (0, 1]. Received: k=1.5"),
    ({"k": 0}, "k must be in (0, 1]. Received: k=0"),
    ({"inference_mode": "mean"}, "Received: inference_mode='mean'"),
    ({"learner": "edge-popup", "inference_mode": "sampled"}, "needs learner='bernoulli'"),
    ({"seed": 1.5}, "seed must be an int or None. Received: seed=1.5"),
    ({"units": 0}, "units must be a positive integer"),
])
def test_bad_options_are_refused(kwargs, message):
    kwargs = {"units": 3, **kwargs}
    with pytest.raises(ConfigError) as info:
        SupermaskDense(**kwargs)
    assert message in str(info.value)


def test_bad_model_options_are_refused():
    with pytest.raises(ConfigError, match="kind must be one of masked, supermask"):
        build_model("fc", (8, 8, 1), kind="dense")
    with pytest.raises(ConfigError, match="Unknown supermask option"):
        build_model("fc", (8, 8, 1), kind="supermask", supermask={"rate": 0.5})
    with pytest.raises(ConfigError, match="supermask options need kind='supermask'"):
        build_model("fc", (8, 8, 1), supermask={"k": 0.5})
    with pytest.raises(ConfigError, match="freeze_pruned applies to kind='masked'"):
        build_model("fc", (8, 8, 1), kind="supermask", freeze_pruned=True)
    assert isinstance(prunable_layers(build_model("fc", (8, 8, 1)))["fc1"], MaskedDense)
