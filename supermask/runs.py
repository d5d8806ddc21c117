"""A run folder's lifecycle, the same for every command: inputs, claim, resume checks, files.

* Inputs: ``settings_for`` (settings from the Python API's keyword arguments and ``model=``)
  and ``load_data`` (the named dataset, or your arrays, with the settings naming them).
* A single run's folder (``train``, ``train_supermask``): ``check_output`` before any work,
  ``output_folder`` (``out``, else ``<out_root>/<hash>``), ``claim_output`` (an exclusive lock
  beside it, stale temporaries removed), ``save_run`` (built under a temporary name, swapped in).
* An experiment's folders (``lottery``): ``prepare_experiment`` (``<root>/<hash>/hparams.json``,
  the resume and identity checks), ``lock_trials``, ``remove_levels``, ``check_backend``,
  ``damaged`` (the message for a finished level whose files are missing or corrupt).

File and folder names come from ``supermask.paths``; atomic writes and locks from ``supermask.store``.
"""

import contextlib
import dataclasses
from pathlib import Path

from supermask import backend, early_stop, identity, paths, store
from supermask.data import as_dataset, load_dataset
from supermask.errors import ConfigError, SupermaskError
from supermask.masks import get_weights
from supermask.models import model_label
from supermask.results import read_metrics
from supermask.settings import config_hash, to_dict


# --- inputs ---------------------------------------------------------------------------
def settings_for(settings_cls, settings=None, model=None, **hparams):
    """The settings of a run from the Python API: ``settings`` (default: ``settings_cls()``) with
    the fields given as keyword arguments replaced, and ``model`` (a name, a builder function or
    a model instance, ``models.model_label``) as its model. ConfigError for a field it lacks."""
    if settings is not None and not isinstance(settings, settings_cls):
        raise ConfigError(f"config must be a {settings_cls.__name__}. Received: {type(settings).__name__}")
    names = [f.name for f in dataclasses.fields(settings_cls)]
    unknown = sorted(set(hparams) - set(names))
    if unknown:
        raise ConfigError(f"Unknown hyperparameter(s) {', '.join(unknown)} for {settings_cls.__name__}. "
                          f"Valid: {', '.join(names)}.")
    if model is not None:
        hparams["model"] = model_label(model)
    if settings is None:
        return settings_cls(**hparams)
    return dataclasses.replace(settings, **hparams) if hparams else settings


def load_data(settings, data=None, data_dir=None):
    """``(Dataset, settings)`` for a run: ``data`` (a ``Dataset`` or arrays, ``data.as_dataset``) with
    the settings naming it (dataset label, validation size), else the settings' dataset loaded."""
    if data is None:
        return load_dataset(settings.dataset, data_dir=data_dir, validation_size=settings.validation_size), settings
    data = as_dataset(data, settings.validation_size)
    return data, dataclasses.replace(settings, dataset=data.name, validation_size=len(data.x_val))


# --- what a run records -------------------------------------------------------------------
def metrics_of(result, criterion, **fields):
    """A trained network's ``metrics.json``: the backend, the training seconds, ``fields`` (what the
    command adds: its config hash, level, density...), the summary at the early-stopping iteration of
    ``criterion`` (``early_stop.summarize``) and the whole history (``result``: a ``TrainResult``).
    ``supermask.results`` reads them back."""
    return {"backend": backend.name(), "seconds": result.seconds, **fields,
            "summary": early_stop.summarize(result.history, criterion), "history": result.history}


# --- one run's folder -----------------------------------------------------------------
def check_output(out=None, out_root=None, overwrite=False):
    """Fail before any work if the run folder ``out`` (or a folder under ``out_root``) cannot
    be written, or ``out`` holds an earlier run and ``overwrite`` is False."""
    if out is not None:
        store.check_output_dir(out, "the output folder", overwrite=overwrite)
    elif out_root is not None:
        store.check_output_dir(out_root, "the runs folder")


def output_folder(settings, out=None, out_root=None):
    """Where a run of the resolved ``settings`` writes: ``out``, else ``out_root/<hash>``, else None."""
    if out is not None:
        return Path(out)
    return Path(out_root) / config_hash(settings) if out_root is not None else None


@contextlib.contextmanager
def claim_output(out, overwrite=False):
    """Hold the run folder ``out`` for the block: one process at a time writes it.

    Takes the lock ``.<name>.lock`` beside it (released by the kernel even on kill -9),
    checks again that it may be written, and deletes temporaries a killed earlier run
    left for this folder. ``out=None`` (no output) holds nothing.
    """
    if out is None:
        yield
        return
    with store.exclusive_lock(store.lock_path(out), f"The output folder {out}"):
        store.check_output_dir(out, "the output folder", overwrite=overwrite)
        store.remove_stale_temporaries(Path(out).parent, Path(out).name)
        yield


def write_run_files(folder, model, *, weights_init, masks, metrics, hparams=None):
    """The files of one trained network in ``folder``: its start weights, final weights (from
    ``model``), masks, ``model.keras``, metrics and (if given) hparams, each atomically."""
    if hparams is not None:
        store.write_json(paths.hparams(folder), hparams)
    store.save_arrays(paths.weights_init(folder), weights_init)
    store.save_arrays(paths.weights_final(folder), get_weights(model))
    store.save_arrays(paths.masks(folder), masks)
    store.save_model(paths.model(folder), model)
    store.write_json(paths.metrics(folder), metrics)


def save_run(out, model, overwrite=False, **files):
    """Write a run folder as one unit (``write_run_files`` under a temporary name, then swapped
    in): a run killed while saving leaves the previous folder (or none), never a mix of both."""
    with store.atomic_dir(out, replace=overwrite) as tmp:
        write_run_files(tmp, model, **files)


# --- an experiment's folders ----------------------------------------------------------
def prepare_experiment(settings, root, seeds, resume, verbose):
    """The experiment folder of the resolved lottery ``settings`` with its hparams.json written
    (every value but the seed and the levels); ConfigError if some of ``seeds`` have finished
    levels and not ``resume``, or the experiment was recorded with another model or data
    (``identity.check_same``). Returns ``(experiment folder, seeds already started)``."""
    experiment = paths.experiment(root, settings.experiment_hash())
    started = [s for s in seeds if paths.level(paths.trial(experiment, s), 0).is_dir()]
    if started and not resume:
        raise ConfigError(f"Experiment {experiment} already has finished levels for seeds {started}. "
                          "Pass --resume to continue it, or choose another --root.")
    if paths.hparams(experiment).is_file() and any(experiment.glob("trial_*/level_0")):
        identity.check_same(store.read_json(paths.hparams(experiment)), settings, f"Experiment {experiment}")
    hparams = {k: v for k, v in to_dict(settings).items() if k not in ("seed", "levels")}
    store.write_json(paths.hparams(experiment), hparams)
    if verbose:
        print(f"Experiment {experiment}")
        if resume and not started:
            print("Nothing to resume yet: no level of this experiment has finished. Starting it.")
    return experiment, started


@contextlib.contextmanager
def lock_trials(trial_dirs, redo_level=None, verbose=1):
    """Hold every trial's lock for the block (``LockedError`` if another process has one), after
    creating the trial folders, removing stale temporaries and (``redo_level``) the levels to redo."""
    with contextlib.ExitStack() as stack:
        for trial_dir in trial_dirs:
            Path(trial_dir).mkdir(parents=True, exist_ok=True)
            stack.enter_context(store.exclusive_lock(paths.lock(trial_dir), f"Trial {trial_dir}"))
        for trial_dir in trial_dirs:
            store.remove_stale_temporaries(trial_dir)
            if redo_level is not None:
                remove_levels(trial_dir, redo_level, verbose)
        yield


def remove_levels(trial_dir, first, verbose=1):
    """Delete ``level_<first>`` and every later level folder of a trial, last level first.

    Each folder is renamed to a temporary name, then deleted, so a run killed meanwhile
    leaves finished levels ``0 .. k-1`` and nothing else: never a level built on a
    deleted one. Call it only while holding the trial's lock.
    """
    levels = sorted((int(p.name.split("_")[1]) for p in Path(trial_dir).glob("level_*")
                     if p.is_dir() and p.name.split("_")[1].isdigit()), reverse=True)
    for level in (L for L in levels if L >= first):
        folder = paths.level(trial_dir, level)
        if verbose:
            print(f"Level {level}: deleting it to run it again (--redo-level {first})")
        store.remove_dir(folder)


def check_backend(trial_dir, backend_name):
    """ConfigError if the trial's level 0 was trained on another Keras backend than ``backend_name``."""
    level0 = paths.level(trial_dir, 0)
    if level0.is_dir():
        trained_on = read_metrics(level0).get("backend")
        if trained_on != backend_name:
            raise ConfigError(f"{trial_dir} was trained with KERAS_BACKEND={trained_on}; resume it with "
                              f"that backend, or choose another --root for {backend_name}.")


def damaged(exc):
    """The error for a missing or corrupt file (``store.CorruptFileError``) in a finished level:
    which folder to delete, or which level to redo."""
    level_dir = next((p for p in [exc.path, *exc.path.parents]
                      if p.name.startswith("level_") and p.parent.name.startswith("trial_")), None)
    if level_dir is None:
        return exc
    level = level_dir.name.split("_")[1]
    return SupermaskError(f"{exc} The finished level folder {level_dir} is damaged: rerun with "
                          f"--redo-level {level} (redoes level {level} and every later one), or delete "
                          f"{level_dir} and every later level folder and rerun with --resume.")
