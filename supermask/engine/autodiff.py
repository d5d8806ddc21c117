"""Derivatives of a scalar function of a Keras model's trainable variables, per backend.

The seam where the backends differ for pruning at initialisation (SNIP, GraSP, SynFlow): the
gradient of a scalar ``fn(values)`` and its Hessian-vector product. ``fn`` takes the list of
trainable values (tensors, in ``model.trainable_variables`` order) and computes a scalar with
``keras.ops``, typically through ``model.stateless_call(values, non_trainable_values, x,
training=False)`` (``loss_fn``), so nothing here changes the model's variables.

* JAX: ``jax.grad``; the HVP forward-over-reverse, ``jax.jvp(jax.grad(fn), (w,), (v,))``.
* TensorFlow: ``tf.GradientTape``; the HVP with two nested tapes (the gradient of ``g . v``).
* PyTorch: ``torch.autograd.grad``; the HVP as the gradient of ``g . v`` with
  ``create_graph=True``.

Results are float64 numpy arrays keyed like ``supermask.masks.get_weights`` ("layer/var",
e.g. "fc1/kernel"), one per trainable variable. Each backend is imported only when it runs:
they are optional installs.
"""

import keras
import numpy as np

from supermask import backend
from supermask.masks import weight_variables


def trainable_keys(model):
    """The "layer/var" key of each of ``model.trainable_variables``, in that order."""
    by_id = {id(v): key for key, v in weight_variables(model).items()}
    return [by_id.get(id(v), v.path) for v in model.trainable_variables]


def current_values(model):
    """The trainable variables' values as tensors, in ``model.trainable_variables`` order."""
    return [keras.ops.convert_to_tensor(v.value) for v in model.trainable_variables]


def loss_fn(model, x, y, temperature=1.0, non_trainable_values=None):
    """``fn(values) -> mean cross-entropy`` (nats) of ``model`` on ``(x, y)`` at trainable ``values``,
    inference mode; the logits are divided by ``temperature`` first (GraSP's T)."""
    non_trainable = non_trainable_values or [keras.ops.convert_to_tensor(v.value)
                                             for v in model.non_trainable_variables]
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)

    def fn(values):
        logits, _ = model.stateless_call(values, non_trainable, x, training=False)
        logits = keras.ops.cast(logits, "float32") / temperature
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    return fn


def _keyed(model, arrays):
    return {key: np.asarray(keras.ops.convert_to_numpy(a), dtype=np.float64)
            for key, a in zip(trainable_keys(model), arrays)}


def _vector(model, vector, values):
    """``vector`` ({key: array}; missing keys are zeros) as tensors matching ``values``."""
    out = []
    for key, v in zip(trainable_keys(model), values):
        array = vector.get(key)
        array = np.zeros(tuple(v.shape)) if array is None else np.asarray(array)
        if tuple(array.shape) != tuple(v.shape):
            raise ValueError(f"vector[{key!r}] has shape {array.shape}, the variable {tuple(v.shape)}")
        out.append(keras.ops.convert_to_tensor(array.astype(keras.backend.standardize_dtype(v.dtype))))
    return out


def gradients(model, fn, values=None):
    """``{key: dfn/dw}`` (float64, kernel shapes) of the scalar ``fn(values)`` w.r.t. every trainable
    variable of ``model``, at ``values`` (a list in ``trainable_variables`` order; default: the
    current ones)."""
    values = current_values(model) if values is None else list(values)
    name = backend.name()
    if name == "jax":
        import jax  # lazy: JAX is an optional backend

        return _keyed(model, jax.grad(fn)(values))
    if name == "tensorflow":
        import tensorflow as tf  # lazy: TensorFlow is an optional backend

        with tf.GradientTape() as tape:
            tape.watch(values)
            out = fn(values)
        return _keyed(model, _zeros_for_none(tape.gradient(out, values), values))
    import torch  # lazy: PyTorch is an optional backend

    leaves = [torch.as_tensor(v).detach().clone().requires_grad_(True) for v in values]
    grads = torch.autograd.grad(fn(leaves), leaves, allow_unused=True)
    return _keyed(model, [g.detach() if g is not None else torch.zeros_like(w) for g, w in zip(grads, leaves)])


def hessian_vector_product(model, fn, vector, values=None):
    """``{key: (H v)}`` (float64), H the Hessian of the scalar ``fn`` w.r.t. the trainable variables
    at ``values`` (default: current), ``vector`` a ``{key: array}`` dict (missing keys: zeros)."""
    values = current_values(model) if values is None else list(values)
    tangent = _vector(model, vector, values)
    name = backend.name()
    if name == "jax":
        import jax  # lazy: JAX is an optional backend

        _, hv = jax.jvp(jax.grad(fn), (values,), (tangent,))
        return _keyed(model, hv)
    if name == "tensorflow":
        import tensorflow as tf  # lazy: TensorFlow is an optional backend

        with tf.GradientTape() as outer:
            outer.watch(values)
            with tf.GradientTape() as inner:
                inner.watch(values)
                out = fn(values)
            grads = _zeros_for_none(inner.gradient(out, values), values)
            dot = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, tangent)])
        return _keyed(model, _zeros_for_none(outer.gradient(dot, values), values))
    import torch  # lazy: PyTorch is an optional backend

    leaves = [torch.as_tensor(v).detach().clone().requires_grad_(True) for v in values]
    grads = torch.autograd.grad(fn(leaves), leaves, create_graph=True, allow_unused=True)
    dot = sum((g * t).sum() for g, t in zip(grads, tangent) if g is not None)
    if not torch.is_tensor(dot) or not dot.requires_grad:  # fn is linear: H = 0
        return _keyed(model, [torch.zeros_like(w) for w in leaves])
    hv = torch.autograd.grad(dot, leaves, allow_unused=True)
    return _keyed(model, [h.detach() if h is not None else torch.zeros_like(w) for h, w in zip(hv, leaves)])


def _zeros_for_none(grads, values):
    return [keras.ops.zeros_like(v) if g is None else g for g, v in zip(grads, values)]
