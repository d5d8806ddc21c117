"""``ImpSettings``: iterative magnitude pruning around your own training function (``supermask.imp``).

The pruning fields are the lottery's own (``PruningSettings``, ``LayerwisePruning``,
``GlobalPruning``: the same names, checks and meaning); what the library cannot see — your model,
your training function and whatever it reads — is named by labels and fingerprints:

* ``model``: ``"instance:<class>:<SHA-256 of its weights>"`` (``models.model_label``), and
  ``model_fingerprint`` its architecture (``identity.model_fingerprint``);
* ``train_fn``: ``"module:qualified name"``, and ``train_fn_fingerprint`` a SHA-256 of its source;
* ``settings``: your own hyperparameters (epochs, batch size, the data you train on...), as canonical
  JSON: give what your function reads, so that changing it names a new experiment;
* ``dataset`` / ``data_fingerprint``: the evaluation data (validation and test arrays).

An experiment's folder is the hash of every field but ``seed`` and ``levels`` (as the lottery's).
"""

import dataclasses
from dataclasses import dataclass, field

from supermask import early_stop
from supermask.errors import ConfigError
from supermask.settings.fields import config_hash, non_default_dict
from supermask.settings.pruning import GlobalPruning, LayerwisePruning, PruningSettings
from supermask.seeds import check_seed


def _named(default=None):
    return field(default=default, metadata={"cli": False})


@dataclass(frozen=True)
class ImpSettings(GlobalPruning, LayerwisePruning, PruningSettings):
    """What ``supermask.imp`` ran: your model and training function by name and fingerprint, the pruning."""

    model: str = _named()
    model_fingerprint: str = _named()
    train_fn: str = _named()
    train_fn_fingerprint: str = _named()
    settings: str = _named("{}")
    dataset: str = _named("arrays")
    data_fingerprint: str = _named()
    early_stop: str = _named(early_stop.DEFAULT)
    eval_every: int = _named()
    seed: int = _named(0)

    def __post_init__(self):
        self._check_pruning()
        self._check_layerwise()
        self._check_global()
        check_seed(self.seed)
        early_stop.check_criterion(self.early_stop)
        if self.eval_every is not None and (isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int)
                                            or self.eval_every < 1):
            raise ConfigError(f"eval_every must be an integer >= 1 (training steps) or None (each epoch's end). "
                              f"Received: eval_every={self.eval_every!r}")
        if self.pruning == "global" and self.per_layer():
            raise ConfigError(f"{', '.join(self.per_layer())} set per-layer rates, which scope='global' does not use; "
                              "give one rate, or use scope='layerwise'.")
        if self.pruning == "layerwise" and self.global_rate is not None:
            raise ConfigError("global_rate applies to scope='global'.")

    def hash_fields(self):
        return non_default_dict(dataclasses.replace(self, seed=0, levels=PruningSettings.levels))

    def experiment_hash(self):
        """The experiment folder's name: the hash of everything but the seed and the levels."""
        return config_hash(self)
