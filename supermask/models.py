"""The papers' architectures, by name, built from masked layers.

=========  ==========================================================  ==============
name       layers (ReLU everywhere but the output, which gives logits)   paper defaults
=========  ==========================================================  ==============
fc         784-300-100-10 ("LeNet-300-100")                              Adam 1.2e-3
conv2      conv64-conv64-pool, 256-256-10                                Adam 2e-4
conv4      conv64-conv64-pool, conv128-conv128-pool, 256-256-10          Adam 3e-4
conv6      ... conv256-conv256-pool, 256-256-10                          Adam 3e-4
resnet20   open_lth's cifar_resnet_20 (``supermask.zoo``), BatchNorm      SGD 0.1, see below
vgg16      open_lth's cifar_vgg_16 with BatchNorm (``supermask.zoo``)     SGD 0.1, see below
=========  ==========================================================  ==============

``resnet20`` and ``vgg16`` are plain Keras models (``supermask.zoo``) converted by
``supermask.convert``; their recipe is open_lth's (``_CIFAR_RECIPE``).

Convolutions are 3x3, stride 1, "same" padding; pools are 2x2 max-pools
(Frankle & Carbin 2019, Fig. 2). All use batch size 60 and Glorot-normal kernels.

Layer names are stable so that weights and masks are plain dicts keyed by them:
convolutions ``conv1`` .. ``conv6``, hidden dense layers ``fc1``, ``fc2``, the last
layer ``output``. Only these layers carry prunable kernels.

Each architecture is built from masked layers (``kind="masked"``: trainable kernels,
fixed masks; lottery tickets) or supermask layers (``kind="supermask"``: frozen
kernels, learned masks; Zhou et al. 2019 and Ramanujan et al. 2020). The same ``seed``
gives both kinds the same initial kernels.
"""

import hashlib
import importlib
import inspect
from dataclasses import dataclass

import keras
import numpy as np

from supermask.errors import ConfigError
from supermask.layers import MaskedConv2D, MaskedDense, SupermaskConv2D, SupermaskDense, SupermaskLayer


KINDS = ("masked", "supermask")
# Arguments of ``SupermaskLayer`` that ``build_model(kind="supermask", supermask=...)`` accepts.
SUPERMASK_OPTIONS = ("learner", "k", "signed_constant", "dynamic_scaling", "inference_mode",
                     "score_initializer", "score_regularizer", "use_bias")


@dataclass(frozen=True)
class ModelSpec:
    """What a paper trains a given architecture with."""

    name: str
    conv_filters: tuple  # one entry per pair of convolutions, e.g. (64, 128)
    dense_units: tuple  # hidden dense layers
    learning_rate: float
    batch_size: int = 60
    optimizer: str = "adam"
    iterations: int | None = 50_000  # Frankle & Carbin's training budget; None: ``epochs`` epochs
    epochs: float | None = None
    # The training recipe beyond Adam at a constant rate (``TrainConfig`` fields of the same names).
    momentum: float = 0.0
    weight_decay: float = 0.0  # L2 on every trainable weight, as PyTorch SGD's weight_decay
    lr_schedule: str = "constant"
    milestones: tuple = ()  # epochs at which a "step" schedule multiplies the rate by gamma
    gamma: float = 0.1
    warmup: int = 0  # iterations of linear warm-up
    augment: bool = False  # random crop (pad 4) and horizontal flip
    # IMP defaults (``LotteryConfig``).
    pruning: str = "layerwise"
    global_rate: float | None = None
    prune_ignore: tuple = ()
    builder: str | None = None  # "module:function" of a plain Keras model, converted by convert.masked


# open_lth's CIFAR-10 recipe for both (``default_hparams`` of models/cifar_resnet.py and
# models/cifar_vgg.py): SGD momentum 0.9, lr 0.1, batch 128, weight decay 1e-4, 160 epochs with the
# rate divided by 10 at epochs 80 and 120, no warm-up, flips + 4-pixel crops, global magnitude
# pruning of 20 % per level (VGG-16 never prunes its output layer: pruning_layers_to_ignore fc.weight).
_CIFAR_RECIPE = dict(batch_size=128, optimizer="sgd", iterations=None, epochs=160, momentum=0.9, weight_decay=1e-4,
                     lr_schedule="step", milestones=(80, 120), gamma=0.1, augment=True, pruning="global",
                     global_rate=0.2)

MODELS = {
    "fc": ModelSpec("fc", (), (300, 100), 1.2e-3, iterations=50_000),
    "conv2": ModelSpec("conv2", (64,), (256, 256), 2e-4, iterations=20_000),
    "conv4": ModelSpec("conv4", (64, 128), (256, 256), 3e-4, iterations=25_000),
    "conv6": ModelSpec("conv6", (64, 128, 256), (256, 256), 3e-4, iterations=30_000),
    "resnet20": ModelSpec("resnet20", (), (), 0.1, builder="supermask.zoo:resnet20", **_CIFAR_RECIPE),
    "vgg16": ModelSpec("vgg16", (), (), 0.1, builder="supermask.zoo:vgg16", prune_ignore=("output",),
                       **_CIFAR_RECIPE),
}


# Your own model (a builder "package.module:function"): Keras's Adam default rate, the papers'
# batch size, and CUSTOM_EPOCHS epochs unless --iterations / --epochs say otherwise.
CUSTOM_EPOCHS = 10
CUSTOM = ModelSpec("custom", (), (), 1e-3, iterations=None, epochs=CUSTOM_EPOCHS)


def is_builder(name):
    """Whether ``name`` refers to a model builder ("package.module:function"), not a built-in."""
    return isinstance(name, str) and ":" in name


def get_spec(name):
    """The ``ModelSpec`` of a model name (``CUSTOM`` for a builder); unknown names raise ``ConfigError``."""
    if is_builder(name):
        module, _, function = name.partition(":")
        if not module or not function:
            raise ConfigError(f"A model builder is written package.module:function. Received: {name!r}")
        return CUSTOM
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"Unknown model {name!r}. Valid models: {', '.join(MODELS)}, or your own builder as "
            "package.module:function."
        ) from None


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
        from supermask.identity import weights_digest

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
    module_name, _, path = name.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"Cannot import module {module_name!r} of the model builder {name!r} ({exc}). Put "
                          "its folder on PYTHONPATH or run from that folder.") from None
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"Module {module_name!r} has no {path!r} (model builder {name!r}).")
    if not callable(obj):
        raise ConfigError(f"The model builder {name!r} is not a function.")
    return obj


def build(name, input_shape, num_classes=10, seed=0, kind="masked", freeze_pruned=False, supermask=None):
    """The one way to build any model: ``name`` from masked (or supermask) layers.

    ``name``: fc / conv2 / conv4 / conv6 (the papers' layer lists, ``_paper_model``); resnet20 /
    vgg16 and your own builder ("package.module:function", a function, or a built
    ``keras.Model`` instance, see ``model_label``) give a plain Keras model that
    ``supermask.convert`` converts.

    A builder is called as ``fn(input_shape=..., num_classes=..., seed=...)`` (``seed``
    only if it takes one; ``keras.utils.set_random_seed(seed)`` comes first either way),
    in a fresh Keras session (``keras.backend.clear_session``), so that automatic layer
    names ("dense", "dense_1", ...) are the same at every call. It returns a Keras model,
    plain or already masked, that maps a batch of ``input_shape`` to ``num_classes``
    logits (no softmax: the loss is computed from logits).
    """
    from supermask import convert
    from supermask.config import check_seed

    if not isinstance(name, str):
        name = model_label(name)
    if not is_builder(name) and get_spec(name).builder is None:
        return _paper_model(name, input_shape, num_classes, seed=seed, freeze_pruned=freeze_pruned, kind=kind,
                            supermask=supermask)
    check_seed(seed)
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
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
    if kind == "masked":
        return convert.masked(model, freeze_pruned=freeze_pruned)
    options = dict(supermask or {})
    if freeze_pruned:
        raise ConfigError("freeze_pruned applies to kind='masked' only. Received: kind='supermask'")
    unknown = sorted(set(options) - set(SUPERMASK_OPTIONS))
    if unknown:
        raise ConfigError(f"Unknown supermask option(s) {', '.join(unknown)}. Valid options: "
                          f"{', '.join(SUPERMASK_OPTIONS)}.")
    return convert.supermask(model, seed=seed, **options)


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
    from supermask.identity import model_fingerprint

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


def derive_seed(seed, index):
    """The seed of a model's ``index``-th random part (a kernel initialiser, a mask sampler).

    ``seed * 1000 + index`` while that is below 2**31 (every seed up to 2 147 482: the
    seeds all earlier results used), else a SHA-256 mix of both folded into [1, 2**31):
    every backend's seed generator takes it (PyTorch's needs int32), for any seed in
    [0, 2**32).
    """
    plain = int(seed) * 1000 + int(index)
    if plain < 2**31:
        return plain
    digest = hashlib.sha256(f"{int(seed)}:{int(index)}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "little") % (2**31 - 1)


def build_model(name, input_shape, num_classes=10, seed=0, freeze_pruned=False, kind="masked",
                supermask=None):
    """``build`` with the argument order of earlier versions: every model, built-in or your own
    builder ("package.module:function"), is built the one way ``build`` builds it."""
    return build(name, input_shape, num_classes, seed=seed, kind=kind, freeze_pruned=freeze_pruned,
                 supermask=supermask)


def _paper_model(name, input_shape, num_classes=10, seed=0, freeze_pruned=False, kind="masked",
                 supermask=None):
    """Build (uncompiled) the lottery papers' model ``name`` (fc, conv2/4/6) for images of
    ``input_shape`` (H, W, C).

    ``seed`` fixes the Glorot-normal initial kernels: the same seed on the same
    backend gives the same initial weights, whatever ``kind``. Biases start at zero.
    Returns a ``keras.Sequential`` whose prunable layers are named as in the module
    docstring.

    Args:
        kind: ``"masked"`` (``MaskedDense`` / ``MaskedConv2D``) or ``"supermask"``
            (``SupermaskDense`` / ``SupermaskConv2D``: frozen kernels, trainable scores).
        freeze_pruned: masked layers only (see ``MaskedLayer``).
        supermask: supermask layers only: a dict of ``SupermaskLayer`` options, any of
            ``SUPERMASK_OPTIONS`` (e.g. ``{"learner": "edge-popup", "k": 0.5}``). Each
            layer's mask-sampling seed (and default score init) is derived from ``seed``.
    """
    from supermask.config import check_seed

    spec = get_spec(name)
    check_seed(seed)
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape must be (height, width, channels). Received: {input_shape!r}")
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    if kind == "masked":
        if supermask:
            raise ConfigError(f"supermask options need kind='supermask'. Received: kind={kind!r}")

        def dense(units, index, **kwargs):
            return MaskedDense(units, freeze_pruned=freeze_pruned, **kwargs)

        def conv(filters, index, **kwargs):
            return MaskedConv2D(filters, 3, padding="same", freeze_pruned=freeze_pruned, **kwargs)
    else:
        if freeze_pruned:
            raise ConfigError("freeze_pruned applies to kind='masked' only. Received: kind='supermask'")
        options = dict(supermask or {})
        unknown = sorted(set(options) - set(SUPERMASK_OPTIONS))
        if unknown:
            raise ConfigError(
                f"Unknown supermask option(s) {', '.join(unknown)}. Valid options: {', '.join(SUPERMASK_OPTIONS)}."
            )

        def dense(units, index, **kwargs):
            return SupermaskDense(units, seed=derive_seed(seed, 500 + index), **options, **kwargs)

        def conv(filters, index, **kwargs):
            return SupermaskConv2D(filters, 3, padding="same", seed=derive_seed(seed, 500 + index),
                                   **options, **kwargs)

    init_seeds = iter(range(100))

    def kernel_init():
        return keras.initializers.GlorotNormal(seed=derive_seed(seed, next(init_seeds)))

    layers = [keras.Input(shape=tuple(input_shape), name="image")]
    conv_index = 0
    for filters in spec.conv_filters:
        for _ in range(2):
            conv_index += 1
            layers.append(conv(filters, conv_index, activation="relu", kernel_initializer=kernel_init(),
                               name=f"conv{conv_index}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{conv_index // 2}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate(spec.dense_units, start=1):
        layers.append(dense(units, conv_index + i, activation="relu", kernel_initializer=kernel_init(),
                            name=f"fc{i}"))
    layers.append(dense(num_classes, conv_index + len(spec.dense_units) + 1,
                        kernel_initializer=kernel_init(), name="output"))
    return keras.Sequential(layers, name=f"{name}_model")


def prunable_layers(model):
    """The layers of ``model`` (nested ones too) that own a kernel and a mask (masked or
    supermask), in order, as {key: layer} (``supermask.convert.walk``)."""
    from supermask.convert import prunable_layers as walk_prunable

    return walk_prunable(model)


def supermask_layers(model):
    """The supermask layers of ``model`` (nested ones too), in order, as {key: layer}."""
    return {key: layer for key, layer in prunable_layers(model).items() if isinstance(layer, SupermaskLayer)}


def set_inference_mode(model, mode):
    """Set ``inference_mode`` ("deterministic" or "sampled") of every supermask layer.

    If any mode changes, also drops the model's compiled predict/evaluate functions, so
    that a compiled model (JAX, TensorFlow) retraces with the new mode.
    """
    from supermask.layers.supermask import check_inference_mode

    layers = supermask_layers(model).values()
    modes = [check_inference_mode(mode, layer.learner) for layer in layers]
    if all(layer.inference_mode == m for layer, m in zip(layers, modes)):
        return
    for layer, m in zip(layers, modes):
        layer.inference_mode = m
    model.test_function = None
    model.predict_function = None
