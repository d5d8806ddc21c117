"""Hyperparameters as frozen dataclasses, their canonical JSON and their hash.

A config names everything that changes a result (model, dataset, budget, seed...)
and nothing that does not (where the data lives, where outputs go). Its hash is the
SHA-256 of the canonical JSON of the fields that differ from their defaults, so adding
a new field with a default keeps every old hash (and every old experiment folder) valid.

Fields left unset (None) mean "the paper's value". Before a run names its folder or
writes ``hparams.json`` it calls ``config.resolve(num_train_examples)``, which fills in
every such value (iterations from epochs, batch size, learning rate, learner defaults,
pruning rates): identical runs spelled differently (``--epochs 1`` or ``--iterations
917``; ``--batch-size 60`` or nothing) resolve to one config, one hash, one folder.

Field metadata drive the command-line flags (``supermask.cli``): ``help``, and
``choices`` (a function returning the valid names, so ``--help`` lists them) with an
optional ``normalize`` (e.g. ``fashion-mnist`` -> ``fashion_mnist``).
"""

import dataclasses
import hashlib
import importlib
import json
import math
import numbers
from dataclasses import dataclass, field

from supermask.errors import ConfigError

# Seeds are unsigned 32-bit integers: numpy's legacy seeding, TensorFlow and JAX keys
# all take them, so every backend accepts every valid seed.
MAX_SEED = 2**32 - 1


def _help(text, **metadata):
    return field(default=None, metadata={"help": text, **metadata})


def _names(module, registry):
    """A function returning the names of ``module.registry`` (imported when first asked, so
    that this module stays free of Keras): the ``choices`` of a field."""
    def names():
        return tuple(getattr(importlib.import_module(module), registry))

    return names


_datasets = _names("supermask.data", "DATASETS")
_criteria = _names("supermask.criteria", "CRITERIA")
_mask1_actions = _names("supermask.actions", "MASK1_ACTIONS")
_mask0_actions = _names("supermask.actions", "MASK0_ACTIONS")
_learners = _names("supermask.layers.supermask", "LEARNERS")


def _dataset_name(value):
    return str(value).strip().lower().replace("-", "_")


def _learner_name(value):
    return str(value).strip().lower().replace("_", "-")


def _snake(value):
    return str(value).strip().replace("-", "_")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_seed(seed, name="seed"):
    """``seed`` as an int in [0, 2**32 - 1]; anything else raises ConfigError."""
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer in [0, {MAX_SEED}] (2**32 - 1). Received: {name}={seed!r}")
    return int(seed)


def _set_ints(config, *names):
    """Store integral fields as plain ``int`` (numpy integers do not serialise to JSON)."""
    for name in names:
        value = getattr(config, name)
        if _is_int(value):
            object.__setattr__(config, name, int(value))


@dataclass(frozen=True)
class TrainConfig:
    """How to train one network densely (or with fixed masks)."""

    model: str = field(default="fc", metadata={
        "help": "architecture: a built-in (fc, conv2, conv4, conv6, resnet20, vgg16) or your own builder as "
                "package.module:function, called with input_shape=, num_classes= (and seed=)"})
    dataset: str = field(default="mnist", metadata={"help": "dataset ('fashion-mnist' is accepted too)",
                                                    "choices": _datasets, "normalize": _dataset_name})
    epochs: float = _help("training length in epochs of the training split (default: the paper's iterations)")
    iterations: int = _help("training length in iterations; overrides --epochs (default: the paper's: "
                            "fc 50000, conv2 20000, conv4 25000, conv6 30000; resnet20 / vgg16 160 epochs; "
                            "your own model: 10 epochs)")
    batch_size: int = _help("examples per step (default: the paper's, 60)")
    learning_rate: float = _help("Adam learning rate (default: the paper's for the model; your own model: 1e-3)")
    seed: int = field(default=0, metadata={"help": "fixes the initial weights and the data order"})
    eval_every: int = field(default=100, metadata={"help": "record validation and test metrics every N iterations"})
    validation_size: int = field(default=5000, metadata={"help": "training images held out for validation"})
    optimizer: str = _help("sgd or adam (default: the model's: adam; resnet20 / vgg16 sgd)",
                           choices=lambda: OPTIMIZER_CHOICES)
    momentum: float = _help("SGD momentum (default: the model's: resnet20 / vgg16 0.9)")
    weight_decay: float = _help("L2 penalty on every trainable weight, as PyTorch SGD's weight_decay (default: "
                                "the model's: 0; resnet20 / vgg16 1e-4)")
    lr_schedule: str = _help("learning-rate schedule: constant, step (times --gamma at each milestone) or cosine "
                             "(default: the model's: constant; resnet20 / vgg16 step)", choices=lambda: TRAIN_SCHEDULES)
    milestones: tuple = _help("step schedule: iterations at which the rate is multiplied by --gamma, as A,B "
                              "(default: resnet20 / vgg16 at epochs 80 and 120)", normalize=lambda v: _ints_list(v))
    gamma: float = _help("step schedule: the factor applied at each milestone (default 0.1)")
    warmup: int = _help("iterations of linear learning-rate warm-up from 0 (default 0)")
    augment: bool = _help("random crop (4-pixel zero padding) and horizontal flip of the training images, on the "
                          "device, seeded (default: the model's: off; resnet20 / vgg16 on)")
    early_stop: str = field(default="val_loss", metadata={
        "help": "the early-stopping iteration a run is read at: val_loss, the iteration of minimum validation loss "
                "(Frankle & Carbin 2019, App. C), or val_accuracy, of maximum validation accuracy",
        "choices": lambda: EARLY_STOP_CRITERIA})
    # The run's identity beyond its name, filled in by ``supermask.identity`` once the model is built
    # and the data loaded (never a flag): a fingerprint of the built architecture (layer classes,
    # configs, weight shapes) and a SHA-256 of the data arrays. See ``hash_fields``.
    model_fingerprint: str = field(default=None, metadata={"cli": False})
    data_fingerprint: str = field(default=None, metadata={"cli": False})

    # Whether ``resolve`` fills the training recipe above from the model's spec (the supermask
    # trainer has its own optimiser defaults per learner).
    RECIPE = True

    def __post_init__(self):
        from supermask.data import DATASETS, is_in_memory
        from supermask.models import get_spec

        get_spec(self.model)
        dataset = self.dataset if is_in_memory(self.dataset) else _dataset_name(self.dataset)
        if dataset not in DATASETS and not is_in_memory(dataset):
            raise ConfigError(f"Unknown dataset {self.dataset!r}. Valid datasets: {', '.join(DATASETS)}, or your "
                              "own arrays through the Python API (data=...).")
        object.__setattr__(self, "dataset", dataset)
        _positive(self, "epochs", "learning_rate")
        _positive_int(self, "iterations", "batch_size", "eval_every")
        check_seed(self.seed)
        _set_ints(self, "seed", "iterations", "batch_size", "eval_every", "validation_size")
        if not _is_int(self.validation_size) or self.validation_size < 0:
            raise ConfigError(f"validation_size must be an integer >= 0. Received: "
                              f"validation_size={self.validation_size!r}")
        self._check_recipe()

    def _check_recipe(self):
        """ConfigError for a bad optimiser, schedule or augmentation setting."""
        if self.optimizer is not None and self.optimizer not in OPTIMIZER_CHOICES:
            raise ConfigError(f"optimizer must be sgd or adam. Received: optimizer={self.optimizer!r}")
        if self.lr_schedule is not None and self.lr_schedule not in TRAIN_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(TRAIN_SCHEDULES)}. "
                              f"Received: lr_schedule={self.lr_schedule!r}")
        for name in ("momentum", "weight_decay"):
            value = getattr(self, name)
            if value is not None and (not _is_real(value) or not math.isfinite(value) or value < 0):
                raise ConfigError(f"{name} must be a finite number >= 0. Received: {name}={value!r}")
        _positive(self, "gamma")
        if self.warmup is not None and (not _is_int(self.warmup) or self.warmup < 0):
            raise ConfigError(f"warmup must be an integer >= 0 (iterations). Received: warmup={self.warmup!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be true or false. Received: augment={self.augment!r}")
        if self.milestones is not None:
            object.__setattr__(self, "milestones", _ints_list(self.milestones))
        _set_ints(self, "warmup")
        if self.early_stop not in EARLY_STOP_CRITERIA:
            raise ConfigError(f"early_stop must be one of {', '.join(EARLY_STOP_CRITERIA)}. "
                              f"Received: early_stop={self.early_stop!r}")

    @property
    def spec(self):
        from supermask.models import get_spec

        return get_spec(self.model)

    def resolved_batch_size(self):
        return self.batch_size or self.spec.batch_size

    def resolved_learning_rate(self):
        return self.learning_rate or self.spec.learning_rate

    def num_iterations(self, num_train_examples):
        """Training length in iterations: --iterations, else --epochs, else the paper's."""
        if self.iterations is not None:
            return int(self.iterations)
        epochs = self.epochs
        if epochs is None and self.spec.iterations is None:  # resnet20 / vgg16: 160; your own model: 10
            epochs = self.spec.epochs
        if epochs is not None:
            steps_per_epoch = num_train_examples / self.resolved_batch_size()
            return max(1, round(epochs * steps_per_epoch))
        return self.spec.iterations

    def resolve(self, num_train_examples):
        """This config with every unset value filled in as a run of it uses them.

        ``num_train_examples``: size of the training split (after the validation
        hold-out), which turns ``epochs`` into ``iterations``. The result has
        ``epochs=None`` and explicit ``iterations``, ``batch_size`` and
        ``learning_rate``; resolving it again changes nothing.
        """
        resolved = dataclasses.replace(self, epochs=None, iterations=self.num_iterations(num_train_examples),
                                       batch_size=self.resolved_batch_size(),
                                       learning_rate=self.resolved_learning_rate())
        return resolved._resolve_recipe(num_train_examples) if self.RECIPE else resolved

    def _resolve_recipe(self, num_train_examples):
        """The optimiser, schedule and augmentation filled in from the model's spec, every
        value spelled out (``gamma`` stays None where no step schedule uses it). The hash
        still names the lottery papers' plain recipe as before these options existed
        (``hash_fields``)."""
        spec = self.spec
        values = {name: getattr(self, name) if getattr(self, name) is not None else getattr(spec, name)
                  for name in ("optimizer", "momentum", "weight_decay", "lr_schedule", "gamma", "warmup", "augment")}
        if self.milestones is not None:
            values["milestones"] = self.milestones
        else:
            per_epoch = num_train_examples / self.resolved_batch_size()
            values["milestones"] = tuple(max(1, round(e * per_epoch)) for e in spec.milestones)
        if values["optimizer"] == "adam" and values["momentum"]:
            raise ConfigError(f"momentum applies to optimizer sgd. Received: momentum={values['momentum']}, "
                              "optimizer='adam'")
        if values["lr_schedule"] != "step":
            if self.milestones:
                raise ConfigError(f"milestones apply to lr_schedule 'step'. Received: milestones={self.milestones}, "
                                  f"lr_schedule={values['lr_schedule']!r}")
            values["milestones"], values["gamma"] = (), None
        elif not values["milestones"]:
            raise ConfigError("lr_schedule 'step' needs --milestones (iterations, e.g. 30000,40000).")
        if self.milestones and any(m >= self.iterations for m in self.milestones):  # the model's may lie beyond
            raise ConfigError(f"milestones must be below the {self.iterations} training iterations. "
                              f"Received: {values['milestones']}")
        return dataclasses.replace(self, **values)

    @property
    def _plain(self):
        """Whether the model's spec is the lottery papers' plain recipe (Adam at a constant rate,
        no weight decay or augmentation, layer-wise pruning of every layer: fc, conv2/4/6, own)."""
        spec = self.spec
        return all(getattr(spec, name) == value for name, value in PLAIN_RECIPE.items()) \
            and spec.pruning == "layerwise" and not spec.prune_ignore

    def hash_fields(self):
        """The fields that name this config's folder: those that differ from their defaults,
        after three rules that keep every folder named before they existed:

        - for the plain-recipe models (``_plain``), a recipe value equal to that recipe counts
          as unset (configs before 474b551 had no such fields; ``hparams.json`` spells them out);
        - ``model_fingerprint`` counts only for your own models (a builder or a model instance):
          a built-in's architecture is named by its name, and its fingerprint is recorded in
          ``hparams.json`` and checked when an experiment is resumed (``supermask.identity``);
        - ``data_fingerprint`` never counts: arrays from the Python API carry their SHA-256 in
          the dataset's name already, and a named dataset's is checked on resume likewise.
        """
        from supermask.models import is_builder

        fields = non_default_dict(self)
        if self.RECIPE and self._plain:
            for name, value in {**PLAIN_RECIPE, "pruning": "layerwise", "prune_ignore": ()}.items():
                if name in fields and fields[name] == value:
                    del fields[name]
        if not is_builder(self.model):
            fields.pop("model_fingerprint", None)
        fields.pop("data_fingerprint", None)
        return fields


PRUNING_STRATEGIES = ("layerwise", "global")
TRAIN_SCHEDULES = ("constant", "step", "cosine")
EARLY_STOP_CRITERIA = ("val_loss", "val_accuracy")
# The lottery papers' training recipe (Frankle & Carbin 2019; Zhou et al. 2019).
PLAIN_RECIPE = {"optimizer": "adam", "momentum": 0.0, "weight_decay": 0.0, "lr_schedule": "constant",
                "milestones": (), "warmup": 0, "augment": False}


def _ints_list(value):
    """Iterations from "a,b", a list or a tuple, as an increasing tuple of ints > 0."""
    if value is None:
        return ()
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    try:
        out = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        out = None
    if out is None or any(not _is_int(v) and not (isinstance(v, str) and v.isdigit()) for v in items) \
            or any(v <= 0 for v in out) or any(b <= a for a, b in zip(out, out[1:])):
        raise ConfigError(f"milestones must be increasing iterations > 0, as A,B. Received: {value!r}")
    return out


def _names_list(value):
    """Layer names from "a,b", a list or a tuple, as a sorted tuple without duplicates."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"prune_ignore must be layer names. Received: {value!r}")
    return tuple(sorted({v.strip() for v in items if v.strip()}))


def _rates_list(value):
    """Per-layer rates from "a=0.3,b=0.1", a dict or (name, rate) pairs, as a sorted tuple of pairs."""
    if value is None:
        return ()
    if isinstance(value, str):
        pairs = []
        for item in (v.strip() for v in value.split(",") if v.strip()):
            name, sep, rate = item.rpartition("=")
            try:
                pairs.append((name.strip(), float(rate)))
            except ValueError:
                sep = ""
            if not sep or not name.strip():
                raise ConfigError(f"layer_rates are written NAME=RATE,NAME=RATE. Received: {value!r}")
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        try:
            pairs = [tuple(pair) for pair in value]
        except TypeError:
            pairs = [()]
        if not all(len(pair) == 2 for pair in pairs):
            raise ConfigError(f"layer_rates must map layer names to rates. Received: {value!r}")
    out = {}
    for name, rate in pairs:
        if not isinstance(name, str) or not _is_real(rate) or not 0 <= rate < 1:
            raise ConfigError(f"Each layer rate must be a layer name and a number in [0, 1). Received: {name!r}={rate!r}")
        out[name] = float(rate)
    return tuple(sorted(out.items()))


def _positive(config, *names):
    """ConfigError unless each set field is a finite number > 0."""
    for name in names:
        value = getattr(config, name)
        if value is None:
            continue
        if not _is_real(value) or not math.isfinite(value) or not value > 0:
            raise ConfigError(f"{name} must be a finite number > 0. Received: {name}={value!r}")


def _positive_int(config, *names):
    """ConfigError unless each set field is an integer > 0."""
    for name in names:
        value = getattr(config, name)
        if value is not None and (not _is_int(value) or value <= 0):
            raise ConfigError(f"{name} must be an integer > 0. Received: {name}={value!r}")


def to_dict(config):
    """All fields of a config as a plain dict (its readable form, for hparams.json)."""
    return dataclasses.asdict(config)


def non_default_dict(config):
    """Only the fields that differ from their defaults."""
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != f.default
    }


def canonical_json(data):
    """Deterministic JSON text: sorted keys, no whitespace."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def config_hash(config, length=12):
    """Hex digest naming ``config``: SHA-256 of its class name and non-default fields
    (``TrainConfig.hash_fields``)."""
    fields = config.hash_fields() if hasattr(config, "hash_fields") else non_default_dict(config)
    payload = canonical_json({"kind": type(config).__name__, **fields})
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class LotteryConfig(TrainConfig):
    """Iterative magnitude pruning: train, prune, reset, retrain, for ``levels`` rounds.

    ``seed`` names the trial: an experiment's folder is the hash of every other field
    but ``levels``, and each seed is a ``trial_<seed>`` folder inside it. ``levels`` only
    says how far to go, so ``--resume`` with more levels extends an experiment.
    """

    levels: int = field(default=10, metadata={"help": "pruning rounds after the dense level 0 "
                                                      "(fc: 10 rounds leave 10.7% of hidden weights)"})
    criterion: str = field(default="large_final", metadata={
        "help": "mask criterion: which weights to keep, scored over (init, final)", "choices": _criteria})
    mask1: str = field(default="none", metadata={
        "help": "Mask-1 action on kept weights (none: reset to init)", "choices": _mask1_actions})
    mask0: str = field(default="mask", metadata={
        "help": "Mask-0 action on pruned weights (mask: zero)", "choices": _mask0_actions})
    rewind_iteration: int = field(default=0, metadata={"help": "late rewinding: reset kept weights to their "
                                                               "values at this iteration of level 0 (0: to init)"})
    rate_conv: float = _help("per-round pruning fraction of conv layers (default: conv2/conv4 0.1, conv6 0.15; "
                             "your own model 0.1)")
    rate_fc: float = _help("per-round pruning fraction of hidden dense layers (default 0.2)")
    rate_output: float = _help("per-round pruning fraction of the output layer, the last prunable one (default 0.1)")
    control: bool = field(default=True, metadata={"help": "also train the random-reinit control of every level"})
    pruning: str = _help("layerwise: each layer loses its own rate of its weights per round (Frankle & Carbin); "
                         "global: one ranking over all pruned layers, --global-rate of their weights per round "
                         "(open_lth's sparse_global) (default: the model's: layerwise; resnet20 / vgg16 global)",
                         choices=lambda: PRUNING_STRATEGIES)
    global_rate: float = _help("--pruning global: per-round pruning fraction of all pruned weights together "
                               "(default 0.2, open_lth's)")
    prune_ignore: tuple = _help("comma-separated layer names that are never pruned, e.g. output (default: the "
                                "model's: none; vgg16 output, as open_lth)", normalize=lambda v: _names_list(v))
    layer_rates: tuple = field(default=(), metadata={
        "help": "per-layer pruning fractions overriding the kind's, as NAME=RATE,NAME=RATE (layer names as "
                "in masks.h5, nested ones as block/dense)", "normalize": _rates_list})

    def __post_init__(self):
        super().__post_init__()
        from supermask.actions import get_mask0, get_mask1
        from supermask.criteria import get_criterion

        get_criterion(self.criterion)
        get_mask1(self.mask1)
        get_mask0(self.mask0)
        for name in ("levels", "rewind_iteration"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
        _set_ints(self, "levels", "rewind_iteration")
        for name in ("rate_conv", "rate_fc", "rate_output", "global_rate"):
            value = getattr(self, name)
            if value is not None and not (_is_real(value) and 0 <= value < 1):
                raise ConfigError(f"{name} must be in [0, 1). Received: {name}={value!r}")
        if self.rate_conv is not None and not self.spec.conv_filters and not self._kind_rated:
            raise ConfigError(f"rate_conv applies to models with convolutions (conv2, conv4, conv6); "
                              f"{self.model} has none. Received: rate_conv={self.rate_conv}")
        if self.prune_ignore is not None:
            object.__setattr__(self, "prune_ignore", _names_list(self.prune_ignore))
        object.__setattr__(self, "layer_rates", _rates_list(self.layer_rates))
        if self.pruning is not None and self.pruning not in PRUNING_STRATEGIES:
            raise ConfigError(f"pruning must be one of {', '.join(PRUNING_STRATEGIES)}. "
                              f"Received: pruning={self.pruning!r}")
        if self.strategy == "global":
            from supermask.criteria import check_global

            check_global(self.criterion)
            per_layer = [name for name in ("rate_conv", "rate_fc", "rate_output", "layer_rates") if getattr(self, name)
                         not in (None, ())]
            if per_layer:
                raise ConfigError(f"{', '.join(per_layer)} set per-layer rates, which --pruning global does not use "
                                  "(it has one --global-rate); drop them, or use --pruning layerwise.")
        elif self.global_rate is not None:
            raise ConfigError(f"global_rate applies to --pruning global. Received: global_rate={self.global_rate}, "
                              f"pruning={self.strategy!r}")

    @property
    def _kind_rated(self):
        """Whether layer-wise rates come from the layer kinds (not a paper's table by layer name)."""
        from supermask.models import is_builder

        return is_builder(self.model) or self.spec.builder is not None

    @property
    def strategy(self):
        """The pruning strategy: ``pruning``, else the model's (layerwise; resnet20 / vgg16 global)."""
        return self.pruning or self.spec.pruning

    @property
    def ignored(self):
        """The layers never pruned: ``prune_ignore``, else the model's (vgg16: output)."""
        return self.prune_ignore if self.prune_ignore is not None else tuple(self.spec.prune_ignore)

    def rates(self, kinds):
        """Per-round pruning fraction of each layer for ``--pruning layerwise``.

        ``kinds``: ``{layer: "conv" | "dense"}`` in model order (the last is the output
        layer), or just the layer names of a built-in model (conv1.. are convolutions).
        Built-in models start from the paper's table (``pruning.default_rates``), other
        models from ``pruning.KIND_RATES``; then --rate-conv / --rate-fc / --rate-output by
        kind, then --layer-rates by name; --prune-ignore layers get 0.
        """
        from supermask.pruning import KIND_RATES, default_rates, layer_roles

        if not isinstance(kinds, dict):
            kinds = {name: "conv" if name.startswith("conv") else "dense" for name in kinds}
        self.check_layers(kinds)
        # The papers' models name their output layer "output"; for others it is the last one.
        roles = (layer_roles(kinds) if self._kind_rated
                 else {name: "output" if name == "output" else kind for name, kind in kinds.items()})
        rates = ({name: KIND_RATES[role] for name, role in roles.items()} if self._kind_rated
                 else default_rates(self.model, list(kinds)))
        for layer, role in roles.items():
            kind = {"output": "rate_output", "conv": "rate_conv", "dense": "rate_fc"}[role]
            if getattr(self, kind) is not None:
                rates[layer] = getattr(self, kind)
        rates.update(dict(self.layer_rates))
        rates.update({name: 0.0 for name in self.ignored})
        return rates

    def check_layers(self, layers):
        """ConfigError if --prune-ignore or --layer-rates name a layer not among ``layers``."""
        named = [*self.ignored, *(name for name, _ in self.layer_rates)]
        unknown = [name for name in named if name not in layers]
        if unknown:
            raise ConfigError(f"No prunable layer {', '.join(map(repr, unknown))} in model {self.model}. Prunable "
                              f"layers: {', '.join(layers)}.")

    def resolve(self, num_train_examples):
        """``TrainConfig.resolve`` plus the pruning of the model: the strategy and ignored layers
        (spelled out only where they differ from layerwise / none, so older hashes hold), and
        the per-kind rates for ``layerwise`` or the global rate for ``global``."""
        from supermask.pruning import GLOBAL_RATE, KIND_RATES, PRUNE_RATES

        base = super().resolve(num_train_examples)
        if base.weight_decay and self.mask0 != "mask":
            raise ConfigError(f"Mask-0 action {self.mask0!r} keeps pruned weights frozen, which --weight-decay would "
                              "shrink; set --weight-decay 0 or use --mask0 mask.")
        base = dataclasses.replace(base, pruning=self.strategy, prune_ignore=tuple(self.ignored))
        if self.strategy == "global":
            rate = self.global_rate if self.global_rate is not None else self.spec.global_rate or GLOBAL_RATE
            return dataclasses.replace(base, global_rate=rate)
        if self._kind_rated:
            conv, fc, output = KIND_RATES["conv"], KIND_RATES["dense"], KIND_RATES["output"]
        else:
            table = PRUNE_RATES[self.model]
            conv = next((rate for layer, rate in table.items() if layer.startswith("conv")), None)
            fc, output = table["fc1"], table["output"]
        return dataclasses.replace(
            base,
            rate_conv=self.rate_conv if self.rate_conv is not None else conv,
            rate_fc=self.rate_fc if self.rate_fc is not None else fc,
            rate_output=self.rate_output if self.rate_output is not None else output)

    def experiment_hash(self):
        """The experiment folder's name: the hash of everything but the seed and the levels.

        Call it on a resolved config (``resolve``), so that spellings of one run agree.
        """
        return config_hash(dataclasses.replace(self, seed=TrainConfig.seed, levels=LotteryConfig.levels))


# Defaults of the supermask learners, where a SupermaskConfig field is left unset.
# bernoulli: Zhou et al.'s train_supermask.py run for fc (README of
#   uber-research/deconstructing-lottery-tickets: --opt sgd --lr 100 --num_epochs 2000;
#   parser defaults --mom 0.9 --train_batch_size 250 --sigmoid_bias 0, no L2, no decay).
# edge-popup: Ramanujan et al.'s fc config (configs/smallscale/fc/fc_*_unsigned.yml of
#   allenai/hidden-networks: sgd, lr 0.1, cosine_lr, momentum 0.9, weight_decay 1e-4,
#   batch_size 128); their 100 epochs are replaced by the same 2000 as bernoulli, so
#   that a comparison at equal epochs is the default.
SUPERMASK_EPOCHS = 2000
LEARNER_DEFAULTS = {
    "bernoulli": {"batch_size": 250, "learning_rate": 100.0, "optimizer": "sgd", "momentum": 0.9,
                  "weight_decay": 0.0, "lr_schedule": "constant"},
    "edge-popup": {"batch_size": 128, "learning_rate": 0.1, "optimizer": "sgd", "momentum": 0.9,
                   "weight_decay": 1e-4, "lr_schedule": "cosine"},
}
SUPERMASK_WEIGHTS = ("init", "signed_constant")
LR_SCHEDULES = ("constant", "cosine")
INFERENCE_CHOICES = ("deterministic", "sampled")
OPTIMIZER_CHOICES = ("sgd", "adam")


@dataclass(frozen=True)
class SupermaskConfig(TrainConfig):
    """Learn a mask over frozen random weights (Zhou et al. 2019; Ramanujan et al. 2020).

    The fields of ``TrainConfig`` keep their flag names; unset ones take the learner's
    defaults (``LEARNER_DEFAULTS``), read through ``resolved(name)``.
    """

    epochs: float = _help(f"training length in epochs of the training split (default: {SUPERMASK_EPOCHS}, "
                          "Zhou et al.'s fc run)")
    iterations: int = _help("training length in iterations; overrides --epochs")
    batch_size: int = _help("examples per step (default: bernoulli 250, edge-popup 128)")
    learning_rate: float = _help("learning rate of the scores (default: bernoulli 100, edge-popup 0.1)")
    eval_every: int = _help("record validation and test metrics every N iterations (default: once per epoch)")
    learner: str = field(default="bernoulli", metadata={
        "help": "bernoulli (Zhou et al.: sampled masks, p = sigmoid(score)) or edge-popup "
                "(Ramanujan et al.: top-k of |score| per layer)", "choices": _learners, "normalize": _learner_name})
    k: float = _help("edge-popup: fraction of each layer's weights kept, in (0, 1] (default: 0.5)")
    weights: str = field(default="init", metadata={
        "help": "frozen weights: init (Glorot normal) or signed_constant (sign of the init times "
                "the std of its layer)", "choices": lambda: SUPERMASK_WEIGHTS, "normalize": _snake})
    dwr: bool = field(default=False, metadata={
        "help": "Dynamic Weight Rescaling: scale each layer's kernel by total / kept weights of its mask"})
    inference: str = field(default="deterministic", metadata={
        "help": "mask at evaluation: deterministic (p > 0.5, or the top-k) or sampled (bernoulli: a "
                "fresh draw per evaluation batch); for bernoulli the paper's 10-sample test "
                "evaluation is reported too", "choices": lambda: INFERENCE_CHOICES})
    optimizer: str = _help("optimiser of the scores (default: sgd)", choices=lambda: OPTIMIZER_CHOICES)
    momentum: float = _help("SGD momentum (default: 0.9)")
    weight_decay: float = _help("L2 on the scores, as PyTorch SGD weight_decay (default: bernoulli 0, "
                                "edge-popup 1e-4)")
    lr_schedule: str = _help("learning-rate schedule (default: bernoulli constant, edge-popup cosine)",
                             choices=lambda: LR_SCHEDULES)
    score_init: float = _help("bernoulli: initial score of every weight (default: 0, i.e. p = 0.5)")
    eval_samples: int = field(default=10, metadata={
        "help": "bernoulli: sampled masks averaged in the final test evaluation (the paper's 10)"})

    RECIPE = False

    def _check_recipe(self):
        for name in ("milestones", "gamma", "warmup", "augment"):
            if getattr(self, name) not in (None, ()):
                raise ConfigError(f"{name} does not apply to the supermask trainer (its schedules are constant or "
                                  f"cosine, without augmentation). Received: {name}={getattr(self, name)!r}")

    def __post_init__(self):
        super().__post_init__()
        from supermask.layers.supermask import check_k, normalize_learner

        object.__setattr__(self, "learner", normalize_learner(self.learner))
        weights = _snake(self.weights)
        if weights not in SUPERMASK_WEIGHTS:
            raise ConfigError(f"weights must be one of {', '.join(SUPERMASK_WEIGHTS)}. "
                              f"Received: weights={self.weights!r}")
        object.__setattr__(self, "weights", weights)
        if self.k is not None:
            if self.learner != "edge-popup":
                raise ConfigError(f"k applies to learner 'edge-popup' only. Received: k={self.k}, "
                                  f"learner={self.learner!r}")
            check_k(self.k)
        if self.score_init is not None and self.learner != "bernoulli":
            raise ConfigError(f"score_init applies to learner 'bernoulli' only (edge-popup scores start "
                              f"Kaiming-uniform). Received: learner={self.learner!r}")
        if self.inference not in INFERENCE_CHOICES:
            raise ConfigError(f"inference must be deterministic or sampled. Received: inference={self.inference!r}")
        if self.inference == "sampled" and self.learner != "bernoulli":
            raise ConfigError("inference='sampled' needs learner 'bernoulli' (edge-popup masks are "
                              f"deterministic). Received: learner={self.learner!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZER_CHOICES:
            raise ConfigError(f"optimizer must be sgd or adam. Received: optimizer={self.optimizer!r}")
        if self.lr_schedule is not None and self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}. "
                              f"Received: lr_schedule={self.lr_schedule!r}")
        for name in ("momentum", "weight_decay", "score_init"):
            value = getattr(self, name)
            if value is not None and (not _is_real(value) or not math.isfinite(value)):
                raise ConfigError(f"{name} must be a finite number. Received: {name}={value!r}")
        for name in ("momentum", "weight_decay"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"{name} must be >= 0. Received: {name}={value!r}")
        _positive_int(self, "eval_samples")
        _set_ints(self, "eval_samples")

    def resolved(self, name):
        """A field's value, or the learner's default where it is unset."""
        value = getattr(self, name)
        if value is not None:
            return value
        if name == "k":
            return 0.5
        if name == "score_init":
            return 0.0
        return LEARNER_DEFAULTS[self.learner][name]

    def resolved_batch_size(self):
        return self.resolved("batch_size")

    def resolved_learning_rate(self):
        return self.resolved("learning_rate")

    def steps_per_epoch(self, num_train_examples):
        return max(1, round(num_train_examples / self.resolved_batch_size()))

    def num_iterations(self, num_train_examples):
        """Training length in iterations: --iterations, else --epochs, else 2000 epochs."""
        if self.iterations is not None:
            return int(self.iterations)
        epochs = self.epochs if self.epochs is not None else SUPERMASK_EPOCHS
        return max(1, round(epochs * num_train_examples / self.resolved_batch_size()))

    def resolved_eval_every(self, num_train_examples):
        return self.eval_every or self.steps_per_epoch(num_train_examples)

    def resolve(self, num_train_examples):
        """Every learner default and the training length filled in (see ``TrainConfig.resolve``).

        ``k`` is resolved for edge-popup and ``score_init`` for bernoulli only (each
        does not apply to the other learner and stays None there).
        """
        names = ["optimizer", "momentum", "weight_decay", "lr_schedule",
                 "k" if self.learner == "edge-popup" else "score_init"]
        return dataclasses.replace(
            super().resolve(num_train_examples),
            eval_every=self.resolved_eval_every(num_train_examples),
            **{name: self.resolved(name) for name in names})
