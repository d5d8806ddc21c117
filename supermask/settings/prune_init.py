"""Settings of pruning at initialisation (``python -m supermask.prune_init``).

``PruneInitSettings``: the methods (SNIP, GraSP, SynFlow, magnitude, random, your own), the sanity
variants, the densities (fractions of the prunable weights remaining), the scope, the scoring data,
SynFlow's rounds, GraSP's temperature, the trials, and the IMP experiment to compare with.
``PruneInitConfig`` combines them with ``TrainConfig`` (the training recipe of every pruned network).
Its folder is the hash of everything but ``imp`` (a path); the IMP experiment's identity
(``imp_fingerprint``, the hash of its hparams.json) is in it. ``trials`` is in it too, so that a
folder with a ``summary.csv`` is exactly one finished experiment (``prune_init.is_finished``).
"""

from dataclasses import dataclass, field

from supermask.errors import ConfigError
from supermask.settings.fields import comma_items, is_real, one_of, option, positive, positive_int, set_ints
from supermask.settings.training import TrainConfig

SCOPES = ("global", "layerwise")
VARIANTS = ("none", "shuffle", "reinit", "invert")
DEFAULT_METHODS = "snip,grasp,synflow,magnitude,random"


def method_names(value):
    """Method names as one comma string, order kept, duplicates dropped; each must be registered
    (``supermask.prune_init.scores.METHODS``, checked by the runner, which knows your own)."""
    items = comma_items(value, "methods")
    if not items or not all(isinstance(v, str) and v and " " not in v for v in items):
        raise ConfigError(f"methods must name at least one method, as a comma list (e.g. snip,synflow). "
                          f"Received: methods={value!r}")
    return ",".join(dict.fromkeys(items))


def variant_names(value):
    """Sanity variants as one comma string (``VARIANTS`` order kept as given)."""
    items = comma_items(value, "variants")
    bad = [v for v in items if v not in VARIANTS]
    if not items or bad:
        raise ConfigError(f"variants must be a comma list of {', '.join(VARIANTS)}. Received: variants={value!r}")
    return ",".join(dict.fromkeys(items))


def densities_list(value):
    """Densities (fractions of the prunable weights remaining) as a tuple of floats in (0, 1],
    order kept, duplicates dropped."""
    items = comma_items(value, "densities")
    try:
        out = [float(v) if isinstance(v, str) else v for v in items]
    except ValueError:
        out = None
    if not out or not all(is_real(d) and 0 < d <= 1 for d in out):
        raise ConfigError(f"densities must be fractions of weights remaining in (0, 1], as a comma list like "
                          f"0.2,0.05. Received: densities={value!r}")
    return tuple(dict.fromkeys(float(d) for d in out))


@dataclass(frozen=True)
class PruneInitSettings:
    """Which networks to prune at initialisation, how, and which sanity checks to train."""

    methods: str = option(DEFAULT_METHODS, "comma list of pruning-at-init methods: snip, grasp, synflow, "
                                           "magnitude, random, or your own (supermask.prune_init.register)",
                          normalize=method_names)
    variants: str = option("none", "comma list of sanity checks (Frankle et al. 2021) trained for every method: "
                                   "none (the method's network), shuffle (mask permuted per layer), reinit (fresh "
                                   "weights), invert (score inversion)", normalize=variant_names)
    densities: tuple = option((0.5, 0.2, 0.1, 0.05), "comma list of fractions of the prunable weights remaining",
                              normalize=densities_list)
    scope: str = option("global", "global: one ranking over all prunable layers (SynFlow's); layerwise: each "
                                  "layer keeps the density", choices=lambda: SCOPES)
    score_batches: int = option(1, "mini-batches of the training split the data-driven methods (SNIP, GraSP) "
                                   "average their scores over")
    score_batch_size: int = option(100, "examples per scoring mini-batch")
    synflow_rounds: int = option(100, "SynFlow's pruning rounds (exponential schedule; the paper's 100)")
    grasp_temperature: float = option(200.0, "GraSP divides the logits by this temperature when computing g "
                                             "and Hg (the authors' code: 200)")
    trials: int = option(1, "seeds per cell (seed, seed+1, ...)")
    imp: str = option(None, "a finished lottery experiment folder (--rewind-iteration > 0, same model and "
                            "dataset) whose levels give the imp rows and its shuffle / reinit checks")
    imp_fingerprint: str = field(default=None, metadata={"cli": False})

    def __post_init__(self):
        self._check_prune_init()

    def _check_prune_init(self):
        object.__setattr__(self, "methods", method_names(self.methods))
        object.__setattr__(self, "variants", variant_names(self.variants))
        object.__setattr__(self, "densities", densities_list(self.densities))
        one_of(self, "scope", SCOPES)
        positive_int(self, "score_batches", "score_batch_size", "synflow_rounds", "trials")
        positive(self, "grasp_temperature")
        set_ints(self, "score_batches", "score_batch_size", "synflow_rounds", "trials")
        object.__setattr__(self, "grasp_temperature", float(self.grasp_temperature))
        if self.imp is not None and not isinstance(self.imp, str):
            object.__setattr__(self, "imp", str(self.imp))

    def method_list(self):
        return tuple(self.methods.split(","))

    def variant_list(self):
        return tuple(self.variants.split(","))


@dataclass(frozen=True)
class PruneInitConfig(PruneInitSettings, TrainConfig):
    """Pruning at initialisation, then training every pruned network with the model's recipe."""

    def __post_init__(self):
        TrainConfig.__post_init__(self)
        self._check_prune_init()

    def hash_fields(self):
        """``TrainConfig``'s, less ``imp`` (a path; its identity is ``imp_fingerprint``)."""
        fields = TrainConfig.hash_fields(self)
        fields.pop("imp", None)
        return fields
