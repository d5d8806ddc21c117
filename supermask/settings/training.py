"""Settings of one dense training run: the model, the dataset, the training recipe.

Three standalone sections, each checking only its own types and ranges (``ModelSettings``,
``DatasetSettings``, ``TrainingSettings``), and ``TrainConfig``, their combination for the
``train`` command. Combined settings inherit the sections' fields, so the flags, the
``hparams.json`` keys and the hash stay flat, one name per value, as they always were.
Fields left unset (None) mean "the recipe's value": ``supermask.recipes.resolve`` fills them in.
"""

from dataclasses import dataclass, field

from supermask import early_stop, specs
from supermask.data.catalog import DATASETS, is_in_memory
from supermask.errors import ConfigError
from supermask.seeds import check_seed
from supermask.settings.fields import (finite, is_int, non_default_dict, one_of, option, positive, positive_int,
                                       set_ints, unset)

OPTIMIZERS = ("sgd", "adam")
TRAIN_SCHEDULES = ("constant", "step", "cosine")
EARLY_STOP_CRITERIA = tuple(early_stop.CRITERIA)


def early_stop_option():
    """The ``early_stop`` field every training section has (a fresh ``Field`` per class)."""
    return option("val_loss", "the early-stopping iteration a run is read at: val_loss, the iteration of minimum "
                              "validation loss (Frankle & Carbin 2019, App. C), or val_accuracy, of maximum "
                              "validation accuracy", choices=lambda: EARLY_STOP_CRITERIA)


def check_budget(settings, schedules):
    """The checks every training section shares: budget, batch, rate, seed, optimiser, schedule,
    momentum and weight decay, early stopping."""
    positive(settings, "epochs", "learning_rate")
    positive_int(settings, "iterations", "batch_size", "eval_every")
    check_seed(settings.seed)
    set_ints(settings, "seed", "iterations", "batch_size", "eval_every")
    if settings.optimizer is not None and settings.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be sgd or adam. Received: optimizer={settings.optimizer!r}")
    one_of(settings, "lr_schedule", schedules)
    finite(settings, "momentum", "weight_decay", minimum=0)
    one_of(settings, "early_stop", EARLY_STOP_CRITERIA)


def dataset_name(value):
    """``"Fashion-MNIST"`` -> ``"fashion_mnist"`` (in-memory names are kept as they are)."""
    return value if is_in_memory(value) else str(value).strip().lower().replace("-", "_")


def ints_list(value):
    """Iterations from "a,b", a list or a tuple, as an increasing tuple of ints > 0."""
    if value is None:
        return ()
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    try:
        out = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        out = None
    if out is None or any(not is_int(v) and not (isinstance(v, str) and v.isdigit()) for v in items) \
            or any(v <= 0 for v in out) or any(b <= a for a, b in zip(out, out[1:])):
        raise ConfigError(f"milestones must be increasing iterations > 0, as A,B. Received: {value!r}")
    return out


@dataclass(frozen=True)
class ModelSettings:
    """Which architecture: a built-in name or your own builder, and (filled in by a run, never a flag)
    the fingerprints of the built model and the data (``supermask.identity``)."""

    model: str = option("fc", "architecture: a built-in (fc, conv2, conv4, conv6, resnet20, vgg16) or your own "
                              "builder as package.module:function, called with input_shape=, num_classes= (and seed=)")
    model_fingerprint: str = field(default=None, metadata={"cli": False})
    data_fingerprint: str = field(default=None, metadata={"cli": False})

    def __post_init__(self):
        self._check_model()

    def _check_model(self):
        specs.get_spec(self.model)


@dataclass(frozen=True)
class DatasetSettings:
    """Which data: a named dataset (or arrays from the Python API) and the validation hold-out."""

    dataset: str = option("mnist", "dataset ('fashion-mnist' is accepted too)", choices=lambda: DATASETS,
                          normalize=dataset_name)
    validation_size: int = option(5000, "training images held out for validation")

    def __post_init__(self):
        self._check_dataset()

    def _check_dataset(self):
        dataset = dataset_name(self.dataset)
        if dataset not in DATASETS and not is_in_memory(dataset):
            raise ConfigError(f"Unknown dataset {self.dataset!r}. Valid datasets: {', '.join(DATASETS)}, or your "
                              "own arrays through the Python API (data=...).")
        object.__setattr__(self, "dataset", dataset)
        if not is_int(self.validation_size) or self.validation_size < 0:
            raise ConfigError(f"validation_size must be an integer >= 0. Received: "
                              f"validation_size={self.validation_size!r}")
        set_ints(self, "validation_size")


@dataclass(frozen=True)
class TrainingSettings:
    """How long and how to train: budget, batch, optimiser, schedule, augmentation, early stopping."""

    epochs: float = unset("training length in epochs of the training split (default: the paper's iterations)")
    iterations: int = unset("training length in iterations; overrides --epochs (default: the paper's: fc 50000, "
                            "conv2 20000, conv4 25000, conv6 30000; resnet20 / vgg16 160 epochs; your own model: "
                            "10 epochs)")
    batch_size: int = unset("examples per step (default: the paper's, 60)")
    learning_rate: float = unset("Adam learning rate (default: the paper's for the model; your own model: 1e-3)")
    seed: int = option(0, "fixes the initial weights and the data order")
    eval_every: int = option(100, "record validation and test metrics every N iterations")
    optimizer: str = unset("sgd or adam (default: the model's: adam; resnet20 / vgg16 sgd)",
                           choices=lambda: OPTIMIZERS)
    momentum: float = unset("SGD momentum (default: the model's: resnet20 / vgg16 0.9)")
    weight_decay: float = unset("L2 penalty on every trainable weight, as PyTorch SGD's weight_decay (default: "
                                "the model's: 0; resnet20 / vgg16 1e-4)")
    lr_schedule: str = unset("learning-rate schedule: constant, step (times --gamma at each milestone) or cosine "
                             "(default: the model's: constant; resnet20 / vgg16 step)", choices=lambda: TRAIN_SCHEDULES)
    milestones: tuple = unset("step schedule: iterations at which the rate is multiplied by --gamma, as A,B "
                              "(default: resnet20 / vgg16 at epochs 80 and 120)", normalize=ints_list)
    gamma: float = unset("step schedule: the factor applied at each milestone (default 0.1)")
    warmup: int = unset("iterations of linear learning-rate warm-up from 0 (default 0)")
    augment: bool = unset("random crop (4-pixel zero padding) and horizontal flip of the training images, on the "
                          "device, seeded (default: the model's: off; resnet20 / vgg16 on)")
    early_stop: str = early_stop_option()

    def __post_init__(self):
        self._check_training()

    def _check_training(self):
        check_budget(self, TRAIN_SCHEDULES)
        positive(self, "gamma")
        if self.warmup is not None and (not is_int(self.warmup) or self.warmup < 0):
            raise ConfigError(f"warmup must be an integer >= 0 (iterations). Received: warmup={self.warmup!r}")
        set_ints(self, "warmup")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be true or false. Received: augment={self.augment!r}")
        if self.milestones is not None:
            object.__setattr__(self, "milestones", ints_list(self.milestones))


def identity_fields(settings, fields):
    """``fields`` (a settings object's non-default fields) less the fingerprints that do not name
    its folder: ``model_fingerprint`` counts only for your own models (a builder or a model instance;
    a built-in's architecture is named by its name, its fingerprint recorded in ``hparams.json`` and
    checked on resume), ``data_fingerprint`` never (arrays from the Python API carry their SHA-256 in
    the dataset's name; a named dataset's is checked on resume)."""
    if not specs.is_builder(settings.model):
        fields.pop("model_fingerprint", None)
    fields.pop("data_fingerprint", None)
    return fields


@dataclass(frozen=True)
class TrainConfig(TrainingSettings, DatasetSettings, ModelSettings):
    """How to train one network densely (``supermask.train``): model + dataset + training."""

    def __post_init__(self):
        self._check_model()
        self._check_dataset()
        self._check_training()

    def hash_fields(self):
        """The fields that name this run's folder: those that differ from their defaults, less the
        fingerprints (``identity_fields``), and, for models trained with the lottery papers' plain
        recipe (``specs.is_plain``), less recipe values equal to that recipe: settings before 474b551
        had no such fields, and their folders keep their names (``hparams.json`` spells them out)."""
        fields = non_default_dict(self)
        if specs.is_plain(specs.get_spec(self.model)):
            plain = {**specs.PLAIN_RECIPE, "pruning": "layerwise", "prune_ignore": ()}
            for name, value in plain.items():
                if name in fields and fields[name] == value:
                    del fields[name]
        return identity_fields(self, fields)
