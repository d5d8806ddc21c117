"""A finished lottery experiment (IMP with late rewinding) as the comparison's "imp" rows.

Read with ``supermask.paths`` / ``supermask.store`` / ``supermask.results``: ``<imp>/hparams.json``,
``trial_<seed>/level_<L>/{metrics.json, masks.h5}`` and ``trial_<seed>/level_0/weights_rewind.h5``.
Each finished level of each trial is one "imp" network already trained (its ticket's metrics); its
sanity variants (shuffle: the level's mask permuted per layer, from the rewind weights; reinit: the
level's mask on fresh weights) are trained by ``supermask.prune_init.core`` like the others, from the
rewind iteration, as the lottery trains its tickets and controls.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from supermask import paths, store
from supermask.errors import ConfigError
from supermask.results import criterion_of, read_metrics, summary_of
from supermask.settings import canonical_json


@dataclass(frozen=True)
class ImpLevel:
    """One finished level of one trial: ``seed``, ``level``, ``density`` (fraction of prunable
    weights kept), ``folder`` and its ``summary`` (``early_stop.summarize``) and ``seconds``."""

    seed: int
    level: int
    density: float
    folder: Path
    summary: dict
    seconds: float


@dataclass(frozen=True)
class ImpSource:
    path: Path
    hparams: dict
    fingerprint: str
    levels: tuple

    def masks(self, level):
        return store.load_arrays(paths.masks(level.folder))

    def rewind_weights(self, seed):
        return store.load_arrays(paths.weights_rewind(paths.level(paths.trial(self.path, seed), 0)))


def fingerprint(hparams):
    """The identity of an IMP experiment: the SHA-256 (12 hex digits) of its hparams.json's canonical JSON."""
    return hashlib.sha256(canonical_json(hparams).encode()).hexdigest()[:12]


def load(path, config):
    """The IMP experiment at ``path`` for the resolved prune-init ``config``; ConfigError (one line)
    unless it is a finished lottery experiment with late rewinding on the same model, dataset,
    iterations and batch size."""
    path = Path(path)
    hp_path = paths.hparams(path)
    if not hp_path.is_file():
        raise ConfigError(f"--imp {path} is not a lottery experiment folder (no hparams.json): give "
                          "<root>/<hash> of a finished python -m supermask.lottery run.")
    hp = store.read_json(hp_path)
    if not isinstance(hp, dict) or "rewind_iteration" not in hp:
        raise ConfigError(f"--imp {path} holds no lottery experiment (its hparams.json has no rewind_iteration).")
    if not hp.get("rewind_iteration"):
        raise ConfigError(f"--imp {path} was run without late rewinding; the comparison needs IMP with "
                          "rewinding: run python -m supermask.lottery with --rewind-iteration > 0.")
    for name in ("model", "dataset", "iterations", "batch_size"):
        if hp.get(name) != getattr(config, name):
            raise ConfigError(f"--imp {path} has {name}={hp.get(name)!r}, this run {name}="
                              f"{getattr(config, name)!r}; give an IMP experiment with the same model, dataset, "
                              "iterations and batch size.")
    criterion = criterion_of({"early_stop": config.early_stop})
    levels = []
    for trial in sorted(path.glob("trial_*")):
        seed = trial.name.split("_", 1)[1]
        if not seed.isdigit():
            continue
        level = 0
        while paths.level(trial, level).is_dir():
            folder = paths.level(trial, level)
            metrics = read_metrics(folder)
            levels.append(ImpLevel(int(seed), level, float(metrics["overall_density"]), folder,
                                   summary_of(metrics, criterion, paths.metrics(folder)),
                                   float(metrics.get("seconds") or 0.0)))
            level += 1
    if not levels:
        raise ConfigError(f"--imp {path} has no finished level yet: run or --resume the lottery experiment first.")
    return ImpSource(path, hp, fingerprint(hp), tuple(levels))
