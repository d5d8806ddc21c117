"""Find the trained model to export from a run, level, trial or experiment folder.

* a run folder (``python -m supermask.train --out RUN``) or a level folder
  (``<root>/<hash>/trial_<seed>/level_<L>``): holds ``model.keras`` itself;
* a trial folder (``trial_<seed>``): its ``level_<L>`` folders, ``level`` picks one
  (default: the last finished level);
* an experiment folder (``<root>/<hash>``): its ``trial_<seed>`` folders, ``trial`` picks one
  (default: the lowest seed), then ``level`` as above.

``control=True`` takes a level's random-reinit control (``level_<L>/control``) instead.
Unfinished levels live under hidden temporary names and are never picked.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import keras

from supermask import masks as M
from supermask import paths, store
from supermask.data import INPUT_SHAPES
from supermask.models import build
from supermask.errors import ConfigError
from supermask.export.errors import ExportError

# Image shape of each dataset, to rebuild runs saved without model.keras.
_LEVEL = re.compile(r"level_(\d+)")
_TRIAL = re.compile(r"trial_(-?\d+)")


@dataclass(frozen=True)
class Run:
    """A folder holding ``model.keras``, with what is known about where it came from."""

    folder: Path
    hparams: dict
    metrics: dict
    level: int | None = None
    trial: int | None = None
    control: bool = False

    def metadata(self):
        """String-valued ONNX ``metadata_props`` describing the run."""
        props = {"hparams": json.dumps(self.hparams, sort_keys=True), "source": str(self.folder),
                 "backend": self.metrics.get("backend", "unknown"),
                 "level": "none" if self.level is None else str(self.level)}
        if self.trial is not None:
            props["trial"] = str(self.trial)
        if self.control:
            props["control"] = "true"
        if not paths.model(self.folder).is_file():
            props["rebuilt_from"] = f"{paths.weights_final(self.folder).name} + {paths.masks(self.folder).name}"
        return props


def _numbered(folder, pattern):
    """{number: subfolder} of the finished subfolders of ``folder`` matching ``pattern``."""
    out = {}
    for child in folder.iterdir():
        match = pattern.fullmatch(child.name)
        if match and child.is_dir():
            out[int(match.group(1))] = child
    return out


def resolve(run_dir, level=None, trial=None, control=False):
    """The ``Run`` that ``run_dir`` (plus ``level`` / ``trial`` / ``control``) names."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise ExportError(f"Run folder {folder} does not exist. Pass a folder written by "
                          "python -m supermask.train --out or a lottery experiment/trial/level folder.")
    picks_level = _LEVEL.fullmatch(folder.name) is not None or paths.model(folder).is_file()
    if picks_level and (level is not None or trial is not None):
        raise ConfigError(f"{folder} is a single run; --level and --trial apply to a trial or "
                          "experiment folder. Drop them or pass the trial/experiment folder.")
    if not picks_level:
        trials = _numbered(folder, _TRIAL)
        if trials:
            if trial is None:
                trial = min(trials)
            elif trial not in trials:
                raise ConfigError(f"{folder} has no trial {trial}; it has trials {sorted(trials)}.")
            folder = trials[trial]
        elif trial is not None:
            raise ConfigError(f"--trial applies to an experiment folder; {folder} holds no trial_<seed> folders.")
        levels = _numbered(folder, _LEVEL)
        if not levels:
            raise ExportError(f"{folder} holds no model.keras and no finished level_<L> or trial_<seed> "
                              "folders. Pass a run folder, a level, trial or experiment folder.")
        if level is None:
            level = max(levels)
        elif level not in levels:
            raise ConfigError(f"{folder} has no finished level {level}; finished levels: {sorted(levels)}.")
        folder = levels[level]
    if control:
        folder = paths.control(folder)
        if not folder.is_dir():
            raise ExportError(f"{folder.parent} has no random-reinit control folder ({folder.name}/).")
    if not paths.model(folder).is_file() and not (paths.weights_final(folder).is_file()
                                                   and paths.masks(folder).is_file()):
        raise ExportError(f"{folder} has neither {paths.model(folder).name} nor {paths.weights_final(folder).name} "
                          f"+ {paths.masks(folder).name}: it is not a finished run. Pass a finished run folder.")
    return _describe(folder, level, control)


def _describe(folder, level, control):
    metrics = store.read_json(paths.metrics(folder)) if paths.metrics(folder).is_file() else {}
    level_dir = folder.parent if control else folder
    if level is None and _LEVEL.fullmatch(level_dir.name):
        level = int(_LEVEL.fullmatch(level_dir.name).group(1))
    if level is None and isinstance(metrics.get("level"), int):
        level = metrics["level"]
    trial, hparams = None, {}
    for candidate in (folder, level_dir.parent.parent):  # a run's own, else the experiment's
        if paths.hparams(candidate).is_file():
            hparams = store.read_json(paths.hparams(candidate))
            break
    match = _TRIAL.fullmatch(level_dir.parent.name)
    if _LEVEL.fullmatch(level_dir.name) and match:
        trial = int(match.group(1))
        hparams = {**hparams, "seed": trial}
    return Run(folder, hparams, metrics, level, trial, control)


def load_model(run):
    """Load ``run``'s ``model.keras`` (custom layers registered first), else rebuild it.

    Runs written before ``model.keras`` was saved are rebuilt from their hparams,
    ``weights_final.h5`` and ``masks.h5`` (masked models only: lottery levels and
    ``supermask.train`` runs).
    """
    if not paths.model(run.folder).is_file():
        return _rebuild(run)
    try:
        # compile=False: inference only, and a compile config saved on one backend (e.g. JAX's
        # steps_per_execution=25) can be invalid on another (PyTorch requires 1).
        return keras.saving.load_model(paths.model(run.folder), compile=False)
    except Exception as exc:  # Keras raises many types for bad files
        raise ExportError(f"Cannot load {paths.model(run.folder)} ({type(exc).__name__}: {exc}). "
                          "Delete the run and retrain, or check that this supermask version wrote it.") from None


def _rebuild(run):
    h = run.hparams
    if "model" not in h or h.get("dataset") not in INPUT_SHAPES or "learner" in h:
        raise ExportError(f"{run.folder} has no {paths.model(run.folder).name}, and its hparams do not "
                          "describe a masked model that can be rebuilt. Retrain it with the current supermask.")
    # Mask-0 actions other than "mask" train with frozen pruned weights (lottery levels >= 1).
    freeze = bool(run.level) and h.get("mask0", "mask") != "mask"
    model = build(h["model"], INPUT_SHAPES[h["dataset"]], 10, seed=h.get("seed", 0), freeze_pruned=freeze)
    M.set_weights(model, store.load_arrays(paths.weights_final(run.folder)))
    M.set_masks(model, store.load_arrays(paths.masks(run.folder)))
    return model
