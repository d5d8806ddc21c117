"""The model registry: each built-in architecture's builder and the recipe its paper trains it with.

=========  ==========================================================  ==============
name       layers (ReLU everywhere but the output, which gives logits)   paper defaults
=========  ==========================================================  ==============
fc         784-300-100-10 ("LeNet-300-100")                              Adam 1.2e-3
conv2      conv64-conv64-pool, 256-256-10                                Adam 2e-4
conv4      conv64-conv64-pool, conv128-conv128-pool, 256-256-10          Adam 3e-4
conv6      ... conv256-conv256-pool, 256-256-10                          Adam 3e-4
resnet20   open_lth's cifar_resnet_20, BatchNorm                         SGD 0.1, see below
vgg16      open_lth's cifar_vgg_16 with BatchNorm                        SGD 0.1, see below
=========  ==========================================================  ==============

Every built-in is a plain Keras builder in ``supermask.zoo`` (``ModelSpec.builder``), built and
converted exactly as your own builder ("package.module:function") is (``supermask.models``).
Your own builders get ``CUSTOM``'s recipe. The names of the training engines live here too.
This module is pure data (and ``import_object``, which resolves "package.module:function"): no Keras,
no numpy.
"""

import functools
import hashlib
import importlib
import inspect
from dataclasses import dataclass

from supermask.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """What a paper trains a given architecture with."""

    name: str
    builder: str  # "module:function" of a plain Keras model (converted by supermask.convert)
    conv_filters: tuple  # one entry per pair of convolutions, e.g. (64, 128); () for none or not a paper model
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
    # Whether layer-wise rates come from the paper's table by layer name (``pruning.PRUNE_RATES``)
    # rather than from the layer kinds (``pruning.KIND_RATES``).
    rates_by_name: bool = False


# The lottery papers' training recipe (Frankle & Carbin 2019; Zhou et al. 2019).
PLAIN_RECIPE = {"optimizer": "adam", "momentum": 0.0, "weight_decay": 0.0, "lr_schedule": "constant",
                "milestones": (), "warmup": 0, "augment": False}

# open_lth's CIFAR-10 recipe for both (``default_hparams`` of models/cifar_resnet.py and
# models/cifar_vgg.py): SGD momentum 0.9, lr 0.1, batch 128, weight decay 1e-4, 160 epochs with the
# rate divided by 10 at epochs 80 and 120, no warm-up, flips + 4-pixel crops, global magnitude
# pruning of 20 % per level (VGG-16 never prunes its output layer: pruning_layers_to_ignore fc.weight).
_CIFAR_RECIPE = dict(batch_size=128, optimizer="sgd", iterations=None, epochs=160, momentum=0.9, weight_decay=1e-4,
                     lr_schedule="step", milestones=(80, 120), gamma=0.1, augment=True, pruning="global",
                     global_rate=0.2)


def _paper(name, conv_filters, learning_rate, iterations):
    return ModelSpec(name, f"supermask.zoo:{name}", conv_filters, (300, 100) if name == "fc" else (256, 256),
                     learning_rate, iterations=iterations, rates_by_name=True)


MODELS = {
    "fc": _paper("fc", (), 1.2e-3, 50_000),
    "conv2": _paper("conv2", (64,), 2e-4, 20_000),
    "conv4": _paper("conv4", (64, 128), 3e-4, 25_000),
    "conv6": _paper("conv6", (64, 128, 256), 3e-4, 30_000),
    "resnet20": ModelSpec("resnet20", "supermask.zoo:resnet20", (), (), 0.1, **_CIFAR_RECIPE),
    "vgg16": ModelSpec("vgg16", "supermask.zoo:vgg16", (), (), 0.1, prune_ignore=("output",), **_CIFAR_RECIPE),
}

# Your own model (a builder "package.module:function"): Keras's Adam default rate, the papers'
# batch size, and CUSTOM_EPOCHS epochs unless --iterations / --epochs say otherwise.
CUSTOM_EPOCHS = 10
CUSTOM = ModelSpec("custom", None, (), (), 1e-3, iterations=None, epochs=CUSTOM_EPOCHS)


# The training engines (``supermask.engine``): one compiled program per chunk, or Keras ``fit``.
ENGINES = ("compiled", "fit")
DEFAULT_ENGINE = "compiled"


def is_builder(name):
    """Whether ``name`` refers to your own model ("package.module:function", or a label of a
    function / model instance given in Python), not a built-in."""
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


def is_plain(spec):
    """Whether ``spec`` trains with the lottery papers' plain recipe (Adam at a constant rate, no
    weight decay or augmentation, layer-wise pruning of every layer): fc, conv2/4/6, your own."""
    return all(getattr(spec, name) == value for name, value in PLAIN_RECIPE.items()) \
        and spec.pruning == "layerwise" and not spec.prune_ignore


def import_object(name, what):
    """The function ``name`` ("package.module:function", the module on ``sys.path``) names;
    ConfigError in one line if it cannot be imported or is not callable. ``what`` says what it is
    for the message ("model builder", "criterion")."""
    module_name, _, path = name.partition(":")
    if not module_name or not path:
        raise ConfigError(f"A {what} is written package.module:function. Received: {name!r}")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"Cannot import module {module_name!r} of the {what} {name!r} ({exc}). Put "
                          "its folder on PYTHONPATH or run from that folder.") from None
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"Module {module_name!r} has no {path!r} ({what} {name!r}).")
    if not callable(obj):
        raise ConfigError(f"The {what} {name!r} is not a function.")
    return obj


def source_digest(fn):
    """``"sha256:<hex>"`` of the source of function ``fn`` (your own criterion, your training function), so
    that an experiment whose function changed gets another name. A ``functools.partial`` counts with its
    arguments, a callable object by its class's source. Where the source cannot be read (a function made
    in a notebook cell or by ``exec``: ``inspect`` may find no file, or another file of the same name) the
    function's code object is digested instead; never anything that changes between processes."""
    extra = b""
    if isinstance(fn, functools.partial):
        extra = repr((fn.args, sorted(fn.keywords.items()))).encode()
        fn = fn.func
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn)
    try:
        text = inspect.getsource(target).encode()
    except Exception:  # OSError, TypeError, and tokenize / syntax errors from a mismatched file
        code = getattr(fn, "__code__", None)
        text = (code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode() if code is not None
                else f"{target.__module__}.{target.__qualname__}".encode())
    return "sha256:" + hashlib.sha256(text + extra).hexdigest()
