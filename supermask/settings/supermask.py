"""Settings of learning a supermask over frozen random weights (Zhou et al. 2019; Ramanujan et al. 2020).

``SupermaskTraining``: the optimisation of the scores (its defaults are the learner's, filled in
by ``supermask.recipes.resolve``); ``SupermaskSettings``: the learner and its options.
``SupermaskConfig`` combines them with the model and dataset sections for ``train_supermask``.
"""

from dataclasses import dataclass

from supermask.errors import ConfigError
from supermask.settings.fields import finite, non_default_dict, option, positive_int, set_ints, snake, unset
from supermask.settings.training import (OPTIMIZERS, DatasetSettings, ModelSettings, check_budget, early_stop_option,
                                         identity_fields)

LEARNERS = ("bernoulli", "edge-popup")
INFERENCE_MODES = ("deterministic", "sampled")
SUPERMASK_WEIGHTS = ("init", "signed_constant")
LR_SCHEDULES = ("constant", "cosine")
SUPERMASK_EPOCHS = 2000  # Zhou et al.'s fc run (train_supermask.py --num_epochs 2000)


def normalize_learner(learner):
    """``"edge_popup"`` -> ``"edge-popup"``; unknown names raise ``ConfigError``."""
    name = str(learner).strip().lower().replace("_", "-")
    if name not in LEARNERS:
        raise ConfigError(f"learner must be one of {', '.join(repr(n) for n in LEARNERS)}. Received: learner={learner!r}")
    return name


def check_k(k):
    """``k`` as a float in (0, 1]; anything else raises ``ConfigError``."""
    try:
        value = float(k)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(k, bool) or not 0.0 < value <= 1.0:
        raise ConfigError(f"k must be in (0, 1]. Received: k={k!r}")
    return value


def check_inference_mode(mode, learner):
    """``mode`` as one of ``INFERENCE_MODES``; "sampled" needs the bernoulli learner."""
    mode = str(mode).lower()
    if mode not in INFERENCE_MODES:
        raise ConfigError(f"inference_mode must be one of {', '.join(repr(m) for m in INFERENCE_MODES)}. "
                          f"Received: inference_mode={mode!r}")
    if mode == "sampled" and learner != "bernoulli":
        raise ConfigError("inference_mode='sampled' needs learner='bernoulli' (edge-popup masks are "
                          f"deterministic). Received: learner={learner!r}")
    return mode


@dataclass(frozen=True)
class SupermaskTraining:
    """How the scores train; unset values take the learner's defaults (``recipes.LEARNER_DEFAULTS``)."""

    epochs: float = unset(f"training length in epochs of the training split (default: {SUPERMASK_EPOCHS}, "
                          "Zhou et al.'s fc run)")
    iterations: int = unset("training length in iterations; overrides --epochs")
    batch_size: int = unset("examples per step (default: bernoulli 250, edge-popup 128)")
    learning_rate: float = unset("learning rate of the scores (default: bernoulli 100, edge-popup 0.1)")
    seed: int = option(0, "fixes the initial weights and the data order")
    eval_every: int = unset("record validation and test metrics every N iterations (default: once per epoch)")
    optimizer: str = unset("optimiser of the scores (default: sgd)", choices=lambda: OPTIMIZERS)
    momentum: float = unset("SGD momentum (default: 0.9)")
    weight_decay: float = unset("L2 on the scores, as PyTorch SGD weight_decay (default: bernoulli 0, "
                                "edge-popup 1e-4)")
    lr_schedule: str = unset("learning-rate schedule (default: bernoulli constant, edge-popup cosine)",
                             choices=lambda: LR_SCHEDULES)
    early_stop: str = early_stop_option()

    def __post_init__(self):
        self._check_score_training()

    def _check_score_training(self):
        check_budget(self, LR_SCHEDULES)


@dataclass(frozen=True)
class SupermaskSettings:
    """Which supermask learner, and its options."""

    learner: str = option("bernoulli", "bernoulli (Zhou et al.: sampled masks, p = sigmoid(score)) or edge-popup "
                                       "(Ramanujan et al.: top-k of |score| per layer)", choices=lambda: LEARNERS,
                          normalize=lambda v: str(v).strip().lower().replace("_", "-"))
    k: float = unset("edge-popup: fraction of each layer's weights kept, in (0, 1] (default: 0.5)")
    weights: str = option("init", "frozen weights: init (Glorot normal) or signed_constant (sign of the init times "
                                  "the std of its layer)", choices=lambda: SUPERMASK_WEIGHTS, normalize=snake)
    dwr: bool = option(False, "Dynamic Weight Rescaling: scale each layer's kernel by total / kept weights of its mask")
    inference: str = option("deterministic", "mask at evaluation: deterministic (p > 0.5, or the top-k) or sampled "
                                             "(bernoulli: a fresh draw per evaluation batch); for bernoulli the "
                                             "paper's 10-sample test evaluation is reported too",
                            choices=lambda: INFERENCE_MODES)
    score_init: float = unset("bernoulli: initial score of every weight (default: 0, i.e. p = 0.5)")
    eval_samples: int = option(10, "bernoulli: sampled masks averaged in the final test evaluation (the paper's 10)")

    def __post_init__(self):
        self._check_supermask()

    def _check_supermask(self):
        object.__setattr__(self, "learner", normalize_learner(self.learner))
        weights = snake(self.weights)
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
        finite(self, "score_init")
        if self.inference not in INFERENCE_MODES:
            raise ConfigError(f"inference must be deterministic or sampled. Received: inference={self.inference!r}")
        if self.inference == "sampled" and self.learner != "bernoulli":
            raise ConfigError("inference='sampled' needs learner 'bernoulli' (edge-popup masks are "
                              f"deterministic). Received: learner={self.learner!r}")
        positive_int(self, "eval_samples")
        set_ints(self, "eval_samples")


@dataclass(frozen=True)
class SupermaskConfig(SupermaskSettings, SupermaskTraining, DatasetSettings, ModelSettings):
    """Learn a mask over frozen random weights: model + dataset + score training + learner."""

    def __post_init__(self):
        self._check_model()
        self._check_dataset()
        self._check_score_training()
        self._check_supermask()

    def hash_fields(self):
        """The non-default fields, less the fingerprints that do not name a folder (``identity_fields``)."""
        return identity_fields(self, non_default_dict(self))
