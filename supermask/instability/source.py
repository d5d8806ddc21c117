"""A finished lottery experiment as the source of an instability run: its recipe, trials, levels and,
for each level, the ticket's start (weights at the rewind iteration k with the level's masks)."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supermask import paths, store
from supermask.errors import ConfigError
from supermask.settings import LotteryConfig


@dataclass(frozen=True)
class Experiment:
    """``folder`` (``<root>/<hash>``), ``config`` (its ``LotteryConfig`` from ``hparams.json``, seed 0),
    ``levels`` (``{seed: [finished levels]}``)."""

    folder: Path
    config: LotteryConfig
    levels: dict

    @property
    def k(self):
        """The iteration the tickets start from: the experiment's rewind iteration (0: init)."""
        return self.config.rewind_iteration


def load_experiment(folder) -> Experiment:
    """The lottery experiment in ``folder``; ConfigError with what to pass if it is not one."""
    folder = Path(folder)
    if not paths.hparams(folder).is_file() or not any(folder.glob("trial_*/level_0")):
        raise ConfigError(f"--experiment must be a lottery experiment folder (<root>/<hash> with hparams.json and "
                          f"trial_<seed>/level_0), as python -m supermask.lottery writes. Received: {folder}")
    hparams = store.read_json(paths.hparams(folder))
    names = {f.name for f in dataclasses.fields(LotteryConfig)}
    try:
        config = LotteryConfig(**{k: v for k, v in hparams.items() if k in names})
    except TypeError as exc:
        raise ConfigError(f"{paths.hparams(folder)} is not a lottery experiment's hparams.json ({exc}).") from None
    levels = {}
    for trial in folder.glob("trial_*"):
        seed = trial.name.partition("_")[2]
        if seed.isdigit():
            found = sorted(int(p.name.partition("_")[2]) for p in trial.glob("level_*")
                           if p.is_dir() and p.name.partition("_")[2].isdigit())
            if found:
                levels[int(seed)] = found
    return Experiment(folder, config, dict(sorted(levels.items())))


def select(experiment, seeds, wanted=None):
    """``[(seed, level)]`` to measure: ``wanted`` levels (default: every finished one) of each of ``seeds``
    (default: every trial); ConfigError naming what exists for a level or seed that does not."""
    seeds = list(experiment.levels) if seeds is None else list(seeds)
    out = []
    for seed in seeds:
        finished = experiment.levels.get(seed)
        if finished is None:
            raise ConfigError(f"{experiment.folder} has no trial_{seed}; its trials are seeds "
                              f"{', '.join(map(str, experiment.levels))}.")
        missing = [level for level in (wanted or ()) if level not in finished]
        if missing:
            raise ConfigError(f"Levels {', '.join(map(str, missing))} of trial_{seed} in {experiment.folder} are not "
                              f"finished; finished: {', '.join(map(str, finished))}.")
        out += [(seed, level) for level in (wanted or finished)]
    return out


def level_start(experiment, seed, level):
    """``(weights, masks)`` a ticket of ``level`` starts from: the level's saved start weights (reset to
    the rewind point, Mask-1 / Mask-0 actions applied) and masks; for level 0 with late rewinding, the
    dense weights at the rewind iteration (``weights_rewind.h5``)."""
    folder = paths.level(paths.trial(experiment.folder, seed), level)
    if level == 0 and experiment.k:
        weights = store.load_arrays(paths.weights_rewind(folder))
    else:
        weights = store.load_arrays(paths.weights_init(folder))
    return weights, {k: np.asarray(v, dtype=bool) for k, v in store.load_arrays(paths.masks(folder)).items()}
