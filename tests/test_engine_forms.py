"""Every program form of the compiled engine against the reference path (Keras ``fit``), on a
conv net with BatchNormalization, max pooling, a strided "same" convolution and augmentation,
for one model and for two trained together.

The forms differ only in how the same steps are dispatched (``supermask.engine.<backend>``'s
module docstring), so each must give the reference's results: the weights (BatchNormalization
statistics and optimiser state included) to ``WEIGHT_ATOL`` and the recorded metrics to
``HISTORY_RTOL``, and where a form runs exactly the reference's operations, bit for bit
(``EXACT``; measured on this CPU).
"""

import os

import keras
import numpy as np
import pytest

from supermask import backend, convert
from supermask import masks as M
from supermask.data import Dataset
from supermask.engine import train_many
from supermask.engine.driver import program_for
from supermask.engine.program import FORM_VARIABLE, has_convolutions
from supermask.errors import ConfigError
from supermask.train import compile_model, make_optimizer

HISTORY_RTOL, WEIGHT_ATOL = 1e-5, 1e-6
ITERATIONS, BATCH, EVAL_EVERY = 12, 8, 6
FORMS = {"jax": ("scan-vmap", "scan-each", "loop-vmap", "loop-each"), "tensorflow": ("xla", "graph"),
         "torch": ("fused", "keras")}[backend.name()]
# Forms that run the reference's very operations on this CPU, bit for bit: JAX's loop of one jitted step
# (Keras's own JAX fit is one too) and PyTorch's with Keras's BatchNormalization. Keras fit on TensorFlow
# runs XLA over 25 steps at a time, which no form of ours reproduces exactly; the JAX scans and PyTorch's
# fused BatchNormalization sum in another order (last bits, measured <= 4e-7 here).
EXACT = {"jax": ("loop-each",), "tensorflow": (), "torch": ("keras",)}[backend.name()]


def tiny_images(n=48, seed=0, shape=(8, 8, 3)):
    rng = np.random.default_rng(seed)

    def split(count):
        y = rng.integers(0, 10, count).astype(np.int32)
        return (rng.normal(size=(count, *shape)) + y[:, None, None, None] / 10).astype(np.float32), y

    return Dataset("images", *split(n), *split(12), *split(12))


def conv_bn_net(seed):
    """conv - BN - ReLU - max pool - strided "same" conv (asymmetric padding) - BN - global pool - dense,
    masked at 60 % density, with SGD and momentum (the CIFAR recipe's optimiser)."""
    keras.utils.set_random_seed(seed)
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(6, 3, padding="same", name="c1"),
                              keras.layers.BatchNormalization(name="bn1"), keras.layers.ReLU(),
                              keras.layers.MaxPooling2D(2), keras.layers.Conv2D(8, 3, strides=2, padding="same",
                                                                                name="c2"),
                              keras.layers.BatchNormalization(name="bn2"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, name="out")])
    model = convert.masked(plain)
    rng = np.random.default_rng(seed)
    M.set_masks(model, {k: rng.random(m.shape) < 0.6 for k, m in M.get_masks(model).items()})
    compile_model(model, make_optimizer(0.05, name="sgd", momentum=0.9))
    return model


def train(seeds, engine, form=None):
    """``[(history, weights, optimiser variables)]`` of the nets ``seeds`` trained together."""
    keras.backend.clear_session()
    models = [conv_bn_net(s) for s in seeds]
    results = train_many(models, tiny_images(), iterations=ITERATIONS, batch_size=BATCH, seeds=seeds,
                         eval_every=EVAL_EVERY, verbose=0, engine=engine, augment=True, form=form)
    return [(r.history, M.get_weights(m), [np.asarray(v) for v in m.optimizer.variables])
            for r, m in zip(results, models)]


@pytest.fixture(scope="module")
def reference():
    """Each net trained alone by Keras fit (the augmentation applied before fit sees a batch)."""
    return {seed: train([seed], "fit")[0] for seed in (0, 1)}


def assert_same(run, expected, exact):
    (history, weights, optimizer), (ref_history, ref_weights, ref_optimizer) = run, expected
    assert [r["iteration"] for r in history] == [0, 6, 12]
    for row, ref in zip(history, ref_history):
        for key, value in row.items():
            if key != "seconds" and value is not None:
                assert value == pytest.approx(ref[key], rel=HISTORY_RTOL, abs=1e-7), key
    assert weights.keys() == ref_weights.keys()
    for key in weights:
        if exact:
            np.testing.assert_array_equal(weights[key], ref_weights[key], err_msg=key)
        else:
            np.testing.assert_allclose(weights[key], ref_weights[key], rtol=0, atol=WEIGHT_ATOL, err_msg=key)
    for value, ref in zip(optimizer, ref_optimizer):
        np.testing.assert_allclose(value, ref, rtol=1e-5, atol=WEIGHT_ATOL)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_the_reference_results_for_one_and_two_models(form, reference):
    one = train([0], "compiled", form)
    assert_same(one[0], reference[0], exact=form in EXACT)
    two = train([0, 1], "compiled", form)
    for k, seed in enumerate((0, 1)):
        assert_same(two[k], reference[seed], exact=form in EXACT)
    # BatchNormalization's statistics moved and the two nets differ: the comparison is not vacuous.
    assert not np.array_equal(two[0][1]["bn1/moving_mean"], np.zeros(6))
    assert not np.array_equal(two[0][1]["c1/kernel"], two[1][1]["c1/kernel"])


def test_the_engine_chooses_its_form_by_platform_and_model(monkeypatch, small_mnist):
    keras.backend.clear_session()
    conv = conv_bn_net(0)
    dense = convert.masked(keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                             keras.layers.Dense(10)]))
    compile_model(dense, make_optimizer(1e-3))
    assert has_convolutions(conv) and not has_convolutions(dense)
    monkeypatch.delenv(FORM_VARIABLE, raising=False)
    chosen = {"jax": ("loop-each", "scan-vmap"), "tensorflow": ("graph", "xla"), "torch": ("fused", "fused")}
    data = tiny_images()
    assert program_for([conv], data, BATCH).form == chosen[backend.name()][0]  # this machine: a CPU
    flat = Dataset("flat", small_mnist.x_train[:64], small_mnist.y_train[:64], small_mnist.x_val[:8],
                   small_mnist.y_val[:8], small_mnist.x_test[:8], small_mnist.y_test[:8])
    assert program_for([dense], flat, BATCH).form == chosen[backend.name()][1]
    monkeypatch.setenv(FORM_VARIABLE, FORMS[-1])
    assert program_for([conv], data, BATCH).form == FORMS[-1]
    assert program_for([conv], data, BATCH, engine="fit").form == "keras-fit"  # the variable is the engine's
    monkeypatch.setenv(FORM_VARIABLE, "fastest")
    with pytest.raises(ConfigError, match=f"Unknown engine form 'fastest' for KERAS_BACKEND={backend.name()}: "
                                          f"valid forms are {', '.join(FORMS)}"):
        program_for([conv], data, BATCH)
    assert os.environ[FORM_VARIABLE] == "fastest"  # read at run time, not at import


@pytest.mark.parametrize("form", FORMS)
def test_models_stay_readable_while_their_program_trains_and_get_its_state_on_sync(form):
    """JAX donates the program's state to its steps: it must be a copy, so a model whose training
    stops part-way (a NaN, an interrupt) can still be read; ``sync`` writes the trained state back."""
    keras.backend.clear_session()
    model = conv_bn_net(0)
    before = M.get_weights(model)
    data = tiny_images()
    program = program_for([model], data, BATCH, form=form)
    program.train_chunk(np.random.default_rng(0).integers(0, len(data.x_train), (1, 3, BATCH)).astype(np.int32))
    assert M.get_weights(model).keys() == before.keys()  # readable mid-training
    program.sync()
    assert not np.array_equal(M.get_weights(model)["c1/kernel"], before["c1/kernel"])


@pytest.mark.skipif(backend.name() != "torch", reason="the PyTorch engine's fused BatchNormalization")
@pytest.mark.parametrize("shape, axis, center, scale", [
    ((16, 5, 5, 6), -1, True, True), ((16, 6, 5, 5), 1, True, False), ((32, 6), -1, False, True),
    ((1, 6), -1, True, True),  # one value per channel: Keras's own call
])
def test_fused_batch_norm_is_kerass_up_to_rounding(shape, axis, center, scale):
    import torch

    from supermask.engine.torch import fused_batch_norm

    rng = np.random.default_rng(0)
    layers = []
    for _ in range(2):
        layer = keras.layers.BatchNormalization(axis=axis, center=center, scale=scale, momentum=0.9)
        layer.build(shape)
        for variable in layer.weights:
            variable.assign(rng.normal(1.0, 0.2, variable.shape).astype("float32"))
            rng = np.random.default_rng(0)  # the same values in both layers
        layers.append(layer)
    keras_layer, fused_layer = layers
    fused = fused_batch_norm(fused_layer)
    assert fused is not None and fused_batch_norm(keras.layers.ReLU()) is None
    x = torch.tensor(rng.normal(0.5, 2.0, shape).astype("float32"))
    weights = torch.tensor(rng.normal(size=shape).astype("float32"))  # a loss whose gradient is not trivial
    outputs = []
    for call, layer in ((keras_layer.call, keras_layer), (fused, fused_layer)):
        inputs = x.clone().requires_grad_(True)
        out = call(inputs, training=True)
        (out * weights).sum().backward()
        grads = [inputs.grad] + [v.value.grad for v in layer.trainable_weights]
        outputs.append((out.detach(), grads, [np.asarray(v) for v in layer.non_trainable_weights]))
        inference = call(x, training=False)
        np.testing.assert_allclose(inference.detach().numpy(), keras_layer.call(x, training=False).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)
    (out_k, grads_k, stats_k), (out_f, grads_f, stats_f) = outputs
    np.testing.assert_allclose(out_f.numpy(), out_k.numpy(), rtol=1e-5, atol=1e-5)
    for g_f, g_k in zip(grads_f, grads_k):
        np.testing.assert_allclose(g_f.numpy(), g_k.numpy(), rtol=0, atol=1e-5 * np.abs(g_k.numpy()).max())
    for s_f, s_k in zip(stats_f, stats_k):  # moving mean and variance
        np.testing.assert_allclose(s_f, s_k, rtol=1e-5, atol=1e-6)
    assert not np.allclose(stats_f[0], 1.0)  # the statistics moved


@pytest.mark.skipif(backend.name() != "torch", reason="the PyTorch engine's copy-free max pooling")
def test_copy_free_max_pool_is_kerass_bit_for_bit():
    import torch

    from supermask.engine.torch import copy_free_max_pool

    layer = keras.layers.MaxPooling2D((2, 3), strides=(2, 1))
    assert copy_free_max_pool(keras.layers.MaxPooling2D(2, padding="same")) is None
    x = torch.tensor(np.random.default_rng(0).normal(size=(3, 8, 9, 4)).astype("float32"))
    results = []
    for call in (layer.call, copy_free_max_pool(layer)):
        inputs = x.clone().requires_grad_(True)
        out = call(inputs)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        results.append((out.detach(), inputs.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
