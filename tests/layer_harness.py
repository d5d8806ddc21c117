"""A small public-API test harness for our Keras layers (in the spirit of KerasHub's).

``check_layer`` builds a layer, runs it, and checks the things every serialisable
layer must do: the declared output shape, a config round-trip, and a ``.keras``
save/load that restores every variable (masks and scores included) exactly.
"""

import keras
import numpy as np


def check_layer(layer_cls, init_kwargs, input_shape, expected_output_shape, tmp_path):
    """Run the standard checks; return the built model (one layer on an Input)."""
    layer = layer_cls(**init_kwargs)
    inputs = keras.Input(shape=input_shape[1:], batch_size=input_shape[0])
    model = keras.Model(inputs, layer(inputs))
    assert tuple(model.output.shape) == tuple(expected_output_shape)

    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    y = keras.ops.convert_to_numpy(model(x))
    assert y.shape == tuple(expected_output_shape)
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(expected_output_shape)

    # Config round-trip gives an equal config.
    clone = layer_cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    # Perturb every variable so the round-trip can't pass by re-initialising.
    rng = np.random.default_rng(1)
    for variable in layer.weights:
        shape = tuple(variable.shape)
        if variable.trainable:
            variable.assign(rng.normal(size=shape).astype("float32"))
        else:
            variable.assign((rng.random(size=shape) < 0.5).astype("float32"))
    y = keras.ops.convert_to_numpy(model(x))

    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    restored_layer = restored.layers[-1]
    assert type(restored_layer) is layer_cls
    for a, b in zip(layer.weights, restored_layer.weights, strict=True):
        assert a.path.split("/")[-1] == b.path.split("/")[-1]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(x)), y, rtol=1e-6, atol=1e-6)
    return model
