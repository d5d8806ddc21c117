"""Settings of the instability analysis (linear mode connectivity, Frankle et al. 2020).

``InstabilitySettings``: where the two copies start (the iterations ``ks`` of a dense run, or the
levels of a finished lottery experiment), how the path between them is measured (``points``,
``splits``, ``bn``, ``train_examples``). ``InstabilityConfig`` adds ``TrainConfig``'s fields: the
network and the recipe the parent and the copies train with (in the lottery mode they come from
the experiment's ``hparams.json`` and may not be given). The run's folder is the hash of every
resolved field but the seed (each seed is one trial in it, as a lottery experiment's); in the
lottery mode, the experiment's own hash stands for the training fields.
"""

import dataclasses
from dataclasses import dataclass

from supermask.errors import ConfigError
from supermask.settings.fields import config_hash, is_int, non_default_dict, option, positive_int, unset
from supermask.settings.training import TrainConfig

SPLITS = ("test", "train")
BN_MODES = ("interpolate", "recompute")
MIN_POINTS = 3  # the two endpoints and at least one point between them


def iteration_list(value, what="ks"):
    """Iterations from "0,100,500", an int or a list, as an increasing tuple of ints >= 0 (duplicates
    dropped, sorted)."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else (
        [value] if is_int(value) else list(value))
    try:
        out = [int(v) for v in items]
    except (TypeError, ValueError):
        out = None
    if not out or any(v < 0 for v in out) or not all(is_int(v) or (isinstance(v, str) and v.isdigit())
                                                      for v in items):
        raise ConfigError(f"{what} must be a comma list of iterations >= 0, e.g. 0,100,500. Received: {what}={value!r}")
    return tuple(sorted(set(out)))


def split_list(value):
    """Splits from "test,train" or a list, as a tuple in ``SPLITS`` order (test first)."""
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    unknown = [v for v in items if v not in SPLITS]
    if not items or unknown:
        raise ConfigError(f"splits must be a comma list of {', '.join(SPLITS)}. Received: splits={value!r}")
    return tuple(s for s in SPLITS if s in items)


@dataclass(frozen=True)
class InstabilitySettings:
    """Where the copies start and how their linear path is measured (``python -m supermask.instability``)."""

    ks: tuple = option((0,), "comma list of iterations k at which two copies of the network split off: trained "
                             "once to max(k), then two copies from each k to the end on different data orders "
                             "(0: from initialisation)", normalize=iteration_list)
    points: int = option(30, "points on the linear path (1-a)*w1 + a*w2, a evenly spaced in [0, 1], endpoints "
                             "included (the paper's: 30)")
    splits: tuple = option(("test",), "comma list of the splits the path is evaluated on: test, train",
                           normalize=split_list)
    bn: str = option("interpolate", "BatchNormalization moving statistics on the path: interpolate (like every "
                                    "other variable, as interpolating two saved networks does) or recompute "
                                    "(re-estimated at every point from training batches)",
                     choices=lambda: BN_MODES)
    train_examples: int = unset("evaluate the train split on its first N examples only (default: all)")
    experiment: str = unset("a finished lottery experiment (<root>/<hash>): measure the tickets of its levels "
                            "instead, from its rewind iteration, with its recipe")
    levels: tuple = unset("with --experiment: comma list of its levels (default: every finished level of "
                          "every trial)", normalize=lambda v: iteration_list(v, "levels"))

    def __post_init__(self):
        self._check_instability()

    def _check_instability(self):
        object.__setattr__(self, "ks", iteration_list(self.ks))
        object.__setattr__(self, "splits", split_list(self.splits))
        object.__setattr__(self, "levels", iteration_list(self.levels, "levels"))
        if not is_int(self.points) or self.points < MIN_POINTS:
            raise ConfigError(f"points must be an integer >= {MIN_POINTS} (both endpoints and a point between). "
                              f"Received: points={self.points!r}")
        if self.bn not in BN_MODES:
            raise ConfigError(f"bn must be one of {', '.join(BN_MODES)}. Received: bn={self.bn!r}")
        positive_int(self, "train_examples")
        if self.experiment is not None:
            object.__setattr__(self, "experiment", str(self.experiment))
        elif self.levels is not None:
            raise ConfigError("levels are the levels of a lottery experiment: pass --experiment <root>/<hash> too.")
        object.__setattr__(self, "points", int(self.points))


@dataclass(frozen=True)
class InstabilityConfig(InstabilitySettings, TrainConfig):
    """The ``instability`` command's settings: ``InstabilitySettings`` + ``TrainConfig``.

    ``seed`` names the trial (one folder ``trial_<seed>`` per seed); the folder of the run is
    ``run_hash`` of the resolved settings.
    """

    def __post_init__(self):
        TrainConfig.__post_init__(self)
        self._check_instability()
        if self.experiment is not None:
            given = sorted(set(non_default_dict(TrainConfig(**{f.name: getattr(self, f.name)
                                                               for f in dataclasses.fields(TrainConfig)})))
                           - {"seed", "model_fingerprint", "data_fingerprint"})
            if given:
                raise ConfigError(f"With --experiment the network and its recipe are the experiment's; drop "
                                  f"{', '.join(given)}.")
            if self.ks != InstabilitySettings.ks:
                raise ConfigError("With --experiment the copies start at the experiment's rewind iteration; "
                                  "drop --ks.")

    def hash_fields(self):
        """Every field that differs from its default but the seed; in the lottery mode the experiment's
        folder name (its hash) replaces its path."""
        fields = TrainConfig.hash_fields(self)
        fields.pop("seed", None)
        if self.experiment is not None:
            fields["experiment"] = self.experiment.rstrip("/").rpartition("/")[2]
        return fields

    def run_hash(self):
        return config_hash(self)
