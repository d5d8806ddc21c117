"""Hyperparameters as frozen dataclasses, their canonical JSON and their hash.

A config names everything that changes a result (model, dataset, budget, seed...)
and nothing that does not (where the data lives, where outputs go). Its hash is the
SHA-256 of the canonical JSON of the fields that differ from their defaults, so adding
a new field with a default keeps every old hash (and every old experiment folder) valid.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from supermask.errors import ConfigError


def _help(text):
    return field(default=None, metadata={"help": text})


@dataclass(frozen=True)
class TrainConfig:
    """How to train one network densely (or with fixed masks)."""

    model: str = field(default="fc", metadata={"help": "architecture: fc, conv2, conv4 or conv6"})
    dataset: str = field(default="mnist", metadata={"help": "mnist, fashion_mnist or cifar10"})
    epochs: float = _help("training length in epochs of the training split (default: the paper's iterations)")
    iterations: int = _help("training length in iterations; overrides --epochs (default: the paper's: "
                            "fc 50000, conv2 20000, conv4 25000, conv6 30000)")
    batch_size: int = _help("examples per step (default: the paper's, 60)")
    learning_rate: float = _help("Adam learning rate (default: the paper's for the model)")
    seed: int = field(default=0, metadata={"help": "fixes the initial weights and the data order"})
    eval_every: int = field(default=100, metadata={"help": "record validation and test metrics every N iterations"})
    validation_size: int = field(default=5000, metadata={"help": "training images held out for validation"})

    def __post_init__(self):
        from supermask.data import DATASETS
        from supermask.models import get_spec

        get_spec(self.model)
        dataset = str(self.dataset).replace("-", "_")
        if dataset not in DATASETS:
            raise ConfigError(f"Unknown dataset {self.dataset!r}. Valid datasets: {', '.join(DATASETS)}.")
        object.__setattr__(self, "dataset", dataset)
        _positive(self, "epochs", "iterations", "batch_size", "learning_rate", "eval_every")
        if self.validation_size < 0:
            raise ConfigError(f"validation_size must be >= 0. Received: validation_size={self.validation_size}")

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
        if self.epochs is not None:
            steps_per_epoch = num_train_examples / self.resolved_batch_size()
            return max(1, round(self.epochs * steps_per_epoch))
        return self.spec.iterations


def _positive(config, *names):
    for name in names:
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be positive. Received: {name}={value!r}")


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
    """Hex digest naming ``config``: SHA-256 of its class name and non-default fields."""
    payload = canonical_json({"kind": type(config).__name__, **non_default_dict(config)})
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class LotteryConfig(TrainConfig):
    """Iterative magnitude pruning: train, prune, reset, retrain, for ``levels`` rounds.

    ``seed`` names the trial: an experiment's folder is the hash of every other field,
    and each seed is a ``trial_<seed>`` folder inside it.
    """

    levels: int = field(default=10, metadata={"help": "pruning rounds after the dense level 0 "
                                                      "(fc: 10 rounds leave 10.7%% of hidden weights)"})
    criterion: str = field(default="large_final", metadata={"help": "which weights to keep (see criteria.CRITERIA)"})
    mask1: str = field(default="none", metadata={"help": "Mask-1 action on kept weights: none (reset to init), "
                                                         "random_reinit, random_reshuffle, signed_constant, ..."})
    mask0: str = field(default="mask", metadata={"help": "Mask-0 action on pruned weights: mask (zero), "
                                                         "freeze_init, freeze_reinit, freeze_init_zero_mask, ..."})
    rewind_iteration: int = field(default=0, metadata={"help": "late rewinding: reset kept weights to their "
                                                               "values at this iteration of level 0 (0: to init)"})
    rate_conv: float = _help("per-round pruning fraction of conv layers (default: conv2/conv4 0.1, conv6 0.15)")
    rate_fc: float = _help("per-round pruning fraction of hidden dense layers (default 0.2)")
    rate_output: float = _help("per-round pruning fraction of the output layer (default 0.1)")
    control: bool = field(default=True, metadata={"help": "also train the random-reinit control of every level"})

    def __post_init__(self):
        super().__post_init__()
        from supermask.actions import get_mask0, get_mask1
        from supermask.criteria import get_criterion

        get_criterion(self.criterion)
        get_mask1(self.mask1)
        get_mask0(self.mask0)
        if self.levels < 0:
            raise ConfigError(f"levels must be >= 0. Received: levels={self.levels}")
        if self.rewind_iteration < 0:
            raise ConfigError(f"rewind_iteration must be >= 0. Received: rewind_iteration={self.rewind_iteration}")
        for name in ("rate_conv", "rate_fc", "rate_output"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(f"{name} must be in [0, 1). Received: {name}={value}")

    def rates(self, layer_names):
        """Per-round pruning fraction of each layer: the paper's, with any overrides."""
        from supermask.pruning import default_rates

        rates = default_rates(self.model, list(layer_names))
        for layer in rates:
            kind = "rate_output" if layer == "output" else "rate_conv" if layer.startswith("conv") else "rate_fc"
            if getattr(self, kind) is not None:
                rates[layer] = getattr(self, kind)
        return rates

    def experiment_hash(self):
        """The experiment folder's name: the hash of everything but the seed (the trial)."""
        return config_hash(dataclasses.replace(self, seed=TrainConfig.seed))
