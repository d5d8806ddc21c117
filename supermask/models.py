"""One way to build any model: a builder gives a plain Keras model, ``supermask.convert`` masks it.

``build(name, input_shape, num_classes, seed, kind)``: ``name`` is a built-in (``supermask.specs``:
fc, conv2/4/6, resnet20, vgg16, each a plain Keras builder in ``supermask.zoo``), your own builder
("package.module:function", a function, or a built ``keras.Model`` instance, see ``model_label``).
Every one takes the same path: the builder is called in a fresh Keras session after
``keras.utils.set_random_seed(seed)``, its output is checked to be logits, and the model is
converted: ``kind="masked"`` (``convert.masked``: trainable kernels, fixed masks; lottery tickets)
or ``kind="supermask"`` (``convert.supermask``: frozen kernels, learned masks; Zhou et al. 2019 and
Ramanujan et al. 2020). The same ``seed`` gives both kinds the same initial kernels; each supermask
layer's sampling seed is ``seeds.derive_seed(seed, 500 + i)`` for its position i = 1, 2, ...

Layer names are stable so that weights and masks are plain dicts keyed by them (``zoo``).
"""

import inspect

import keras
import numpy as np

from supermask import convert
from supermask.errors import ConfigError
from supermask.identity import model_fingerprint, weights_digest
from supermask.layers import SupermaskLayer
from supermask.settings.supermask import check_inference_mode
from supermask.seeds import check_seed
from supermask.specs import MODELS, get_spec, import_object, is_builder  # noqa: F401 (the registry, re-exported)

KINDS = ("masked", "supermask")
# Arguments of ``SupermaskLayer`` that ``build(kind="supermask", supermask=...)`` accepts.
SUPERMASK_OPTIONS = ("learner", "k", "signed_constant", "dynamic_scaling", "inference_mode",
                     "score_initializer", "score_regularizer", "use_bias")

# Builders given as Python functions (the API's model=...), by label: found here first, so that
# a function defined in a script or notebook works in the process that passed it.
_BUILDERS = {}


def model_label(model):
    """The name a config records for ``model``: a built-in name or "module:function" string as
    given; for a function its "module:qualified name"; for a ``keras.Model`` instance
    "instance:<class>:<12 hex digits of its weights>" (see ``instance_builder``). Functions and
    instances are remembered for ``builder`` in this process."""
    if isinstance(model, str):
        get_spec(model)
        return model
    if isinstance(model, keras.Model):
        if not model.built:
            raise ConfigError(f"The model instance '{model.name}' is not built: call it once on a batch (or build it "
                              "with keras.Input) so that its weights, the initialisation, exist.")
        label = f"instance:{type(model).__name__}:{weights_digest(model)}"
        _BUILDERS[label] = instance_builder(model)
        return label
    if not callable(model):
        raise ConfigError(f"model must be a built-in name ({', '.join(MODELS)}), 'package.module:function' "
                          f"or a function returning a Keras model. Received: {type(model).__name__}")
    qualname = getattr(model, "__qualname__", type(model).__qualname__)
    if "<lambda>" in qualname:
        raise ConfigError("The model builder is a lambda; define it with def, so that its name can label "
                          "the experiment folder.")
    label = f"{getattr(model, '__module__', None) or '__main__'}:{qualname}"
    _BUILDERS[label] = model
    return label


def instance_builder(model):
    """A builder returning ``model`` itself: ``build`` then converts it into a masked copy, so the
    caller's model is never modified and its current weights are the initialisation (W0) of
    every trial (the trials' seeds then differ only in the data order and the controls' draws)."""
    def from_instance(input_shape, num_classes):
        return model

    return from_instance


def builder(name):
    """The function a builder label refers to: one passed to ``model_label`` in this process, else
    imported ("package.module:function", the module on ``sys.path``)."""
    if name in _BUILDERS:
        return _BUILDERS[name]
    get_spec(name)
    return import_object(name, "model builder")


def build(name, input_shape, num_classes=10, seed=0, kind="masked", freeze_pruned=False, supermask=None):
    """The one way to build any model: ``name``'s plain Keras model, converted to masked (or
    supermask) layers (see the module docstring).

    A builder is called as ``fn(input_shape=..., num_classes=..., seed=...)`` (``seed`` only if it
    takes one; ``keras.utils.set_random_seed(seed)`` comes first either way), in a fresh Keras
    session (``keras.backend.clear_session``), so that automatic layer names ("dense", "dense_1",
    ...) are the same at every call. It returns a Keras model, plain or already masked, that maps a
    batch of ``input_shape`` to ``num_classes`` logits (no softmax: the loss is computed from logits).

    Args:
        kind: ``"masked"`` or ``"supermask"``.
        freeze_pruned: masked layers only (see ``MaskedLayer``; Mask-0 actions).
        supermask: supermask layers only: a dict of ``SupermaskLayer`` options, any of
            ``SUPERMASK_OPTIONS`` (e.g. ``{"learner": "edge-popup", "k": 0.5}``).
    """
    if not isinstance(name, str):
        name = model_label(name)
    check_seed(seed)
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    options = dict(supermask or {})
    if kind == "masked" and options:
        raise ConfigError(f"supermask options need kind='supermask'. Received: kind={kind!r}")
    if kind == "supermask" and freeze_pruned:
        raise ConfigError("freeze_pruned applies to kind='masked' only. Received: kind='supermask'")
    unknown = sorted(set(options) - set(SUPERMASK_OPTIONS))
    if unknown:
        raise ConfigError(f"Unknown supermask option(s) {', '.join(unknown)}. Valid options: "
                          f"{', '.join(SUPERMASK_OPTIONS)}.")
    model = _call_builder(name, input_shape, num_classes, seed)
    if kind == "masked":
        return convert.masked(model, freeze_pruned=freeze_pruned)
    return convert.supermask(model, seed=seed, **options)


def build_model(name, input_shape, num_classes=10, seed=0, freeze_pruned=False, kind="masked", supermask=None):
    """``build`` under its earlier name and argument order (``freeze_pruned`` before ``kind``), for code
    written against it: the same one path, nothing checked twice."""
    return build(name, input_shape, num_classes, seed=seed, kind=kind, freeze_pruned=freeze_pruned,
                 supermask=supermask)


def _call_builder(name, input_shape, num_classes, seed):
    """The plain (or already masked) Keras model of builder ``name``, built and checked to give logits."""
    fn = builder(name if is_builder(name) else get_spec(name).builder)
    kwargs = {"input_shape": tuple(input_shape), "num_classes": int(num_classes)}
    try:
        parameters = inspect.signature(fn).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        if "seed" in parameters or takes_any:
            kwargs["seed"] = int(seed)
        missing = [k for k in ("input_shape", "num_classes") if k not in parameters and not takes_any]
    except (TypeError, ValueError):  # no signature (a builtin): just call it
        missing = []
    if missing:
        raise ConfigError(f"The model builder {name!r} must accept the keyword arguments input_shape and "
                          f"num_classes (and optionally seed); it lacks {', '.join(missing)}.")
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(int(seed) % 2**32)
    try:
        model = fn(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # the builder's own error, in one line naming it
        message = " ".join(str(exc).split())
        raise ConfigError(f"The model builder {name!r} raised {type(exc).__name__}: {message}") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"The model builder {name!r} must return a keras.Model. Received: {type(model).__name__}")
    if not model.built:
        model(keras.KerasTensor((None, *tuple(input_shape))))
    _check_logits(name, model, input_shape, num_classes)
    return model


def _check_logits(name, model, input_shape, num_classes):
    """ConfigError unless ``model`` maps (batch, *input_shape) to (batch, num_classes) logits."""
    try:
        spec = model.compute_output_spec(keras.KerasTensor((None, *tuple(input_shape))))
    except Exception as exc:  # the model cannot take this input at all
        raise ConfigError(f"The model of builder {name!r} cannot take inputs of shape {tuple(input_shape)} "
                          f"({type(exc).__name__}: {exc}).") from None
    shape = tuple(getattr(spec, "shape", ()) or ())
    if len(shape) != 2 or shape[-1] != num_classes:
        raise ConfigError(f"The model of builder {name!r} must return (batch, {num_classes}) logits for the "
                          f"{num_classes} classes. Received output shape {shape}.")
    if is_builder(name):  # supermask.zoo's models give logits by construction
        _check_not_probabilities(name, model, input_shape)


# Architectures already checked to give logits in this process (a lottery rebuilds its model for every
# network of every level): their fingerprints (supermask.identity), so a builder that changed is checked again.
_CHECKED_LOGITS = set()


def _check_not_probabilities(name, model, input_shape):
    """ConfigError if ``model`` outputs probabilities, whatever makes them (a ``Softmax`` layer,
    ``Activation("softmax")``, a Dense's ``activation="softmax"``/``"sigmoid"``, ``keras.ops.softmax``
    in ``call``): the model is run on 8 random inputs, and rows that are non-negative and sum to
    1 (softmax), or entries all strictly between 0 and 1 (sigmoid), are refused. The loss is
    computed from logits, so such a model would train silently on the wrong loss."""
    fingerprint = (model_fingerprint(model), tuple(input_shape))
    if fingerprint in _CHECKED_LOGITS:
        return
    x = np.random.default_rng(0).normal(size=(8, *tuple(input_shape))).astype("float32")
    try:
        out = keras.ops.convert_to_numpy(model(x, training=False)).astype("float64")
    except Exception:  # e.g. integer inputs (an embedding): the shape check above is all we can do
        return
    if out.ndim != 2 or not np.all(np.isfinite(out)):
        return
    softmax = np.all(out >= 0) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-4)
    sigmoid = np.all(out > 0) and np.all(out < 1) and np.ptp(out) > 0
    if softmax or sigmoid:
        what = "softmax probabilities (rows sum to 1)" if softmax else "sigmoid probabilities (all in (0, 1))"
        raise ConfigError(f"The model of builder {name!r} outputs {what}; return logits instead (drop the final "
                          "softmax / sigmoid): the loss is computed from logits.")
    _CHECKED_LOGITS.add(fingerprint)


def prunable_layers(model):
    """The layers of ``model`` (nested ones too) that own a kernel and a mask (masked or
    supermask), in order, as {key: layer} (``supermask.convert.walk``)."""
    return convert.prunable_layers(model)


def supermask_layers(model):
    """The supermask layers of ``model`` (nested ones too), in order, as {key: layer}."""
    return {key: layer for key, layer in prunable_layers(model).items() if isinstance(layer, SupermaskLayer)}


def set_inference_mode(model, mode):
    """Set ``inference_mode`` ("deterministic" or "sampled") of every supermask layer.

    If any mode changes, also drops the model's compiled predict/evaluate functions, so
    that a compiled model (JAX, TensorFlow) retraces with the new mode.
    """
    layers = supermask_layers(model).values()
    modes = [check_inference_mode(mode, layer.learner) for layer in layers]
    if all(layer.inference_mode == m for layer, m in zip(layers, modes)):
        return
    for layer, m in zip(layers, modes):
        layer.inference_mode = m
    model.test_function = None
    model.predict_function = None
