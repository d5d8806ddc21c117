"""Branches off a trunk (open_lth's ``lottery_branch``): experiments that share a trained level 0.

Level 0 of a trial trains the dense network from its seeded initial weights; what it computes
depends on the architecture, the data, the budget, the optimiser and schedule, the seed and the
rewind point it snapshots, never on how the later levels are made. ``level0_identity`` is the one
place that says so: every field of a resolved ``LotteryConfig`` but the seed (a trial's own,
compared on its own) and ``LATER_LEVELS``, the fields that only shape levels 1.. or how a
finished run is read:

==================================================  ============================================
``levels``                                          how far to go
``criterion`` (and ``criterion_fingerprint``),     how level L's masks and start are made
``mask1``, ``mask0``
``pruning``, ``prune_ignore``, ``rate_conv``,       how much each level prunes
``rate_fc``, ``rate_output``, ``layer_rates``,
``global_rate``
``control``                                         whether levels 1.. train a random-reinit control
``early_stop``                                      where a run is read: the recorded history is the
                                                    same; the summary is recomputed (``copy_level``)
==================================================  ============================================

A new settings field is part of the identity until it is added to ``LATER_LEVELS``: an unknown
field never lets two different level 0s pass as one. ``rewind_iteration`` stays in it (level 0
saves the weights at that iteration), and so do the fingerprints of the model and the data
(``supermask.identity``).

Two trials with equal identities and seeds share one trained level 0: within one ``run_trials``
call (``leaders``: one trains, the others get a copy), and across experiments: a trial that
starts copies the finished ``level_0`` of an equal trial of another experiment (``Trunks``:
the experiment named by ``--branch-from`` first, then those under the same root). A copy is
made of hard links where the file system allows (else of copies), in a temporary folder renamed
when complete, like every level; it never writes into the other experiment and needs no lock on
it (a finished level folder is only ever replaced by a rename). Only ``metrics.json`` may differ
from the source: its summary is recomputed under the branch's own ``early_stop``.
"""

import dataclasses
import json
import os
import shutil
import zipfile
from pathlib import Path

from supermask import backend, early_stop, paths, store
from supermask.errors import ConfigError, SupermaskError
from supermask.results import read_metrics
from supermask.settings import LotteryConfig, canonical_json, to_dict

LATER_LEVELS = ("levels", "criterion", "criterion_fingerprint", "mask1", "mask0", "control", "pruning",
                "prune_ignore", "rate_conv", "rate_fc", "rate_output", "layer_rates", "global_rate", "early_stop")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(LotteryConfig)}


def level0_identity(settings):
    """What level 0 of a trial depends on, but its seed: the fields of a resolved ``LotteryConfig``
    (or of an experiment's ``hparams.json``, a dict; a field it lacks counts as its default) less
    the seed and ``LATER_LEVELS``, as plain JSON data."""
    values = {**_DEFAULTS, **(settings if isinstance(settings, dict) else to_dict(settings))}
    return json.loads(canonical_json({k: v for k, v in values.items() if k not in LATER_LEVELS and k != "seed"}))


def level0_differences(a, b):
    """The level-0 fields in which ``a`` and ``b`` (configs or hparams dicts) differ, sorted."""
    a, b = level0_identity(a), level0_identity(b)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def level0_key(config):
    """Equal for two resolved configs whose trials train the same level 0 (the seed included)."""
    return canonical_json({"seed": config.seed, **level0_identity(config)})


def leaders(trials):
    """Split ``{key: (config, trial folder)}`` into the trials that train level 0 (the first of each
    level-0 key) and ``{key: leader key}`` of the others, which copy their leader's level 0."""
    first, train, followers = {}, {}, {}
    for key, (config, trial_dir) in trials.items():
        leader = first.setdefault(level0_key(config), key)
        if leader == key:
            train[key] = (config, trial_dir)
        else:
            followers[key] = leader
    return train, followers


def _hparams(experiment):
    try:
        recorded = store.read_json(paths.hparams(experiment))
    except store.CorruptFileError:
        return None
    return recorded if isinstance(recorded, dict) else None


def _trained_on(level0):
    try:
        return read_metrics(level0).get("backend")
    except store.CorruptFileError:
        return None


class Trunks:
    """Finished experiments whose level 0 a starting trial may copy, searched in order."""

    def __init__(self, folders=()):
        self.folders = [Path(f) for f in folders]
        self._identities = {}

    @classmethod
    def under(cls, root, first=None):
        """``first`` (an experiment folder, ``--branch-from``), then every experiment under ``root``."""
        root = Path(root)
        found = sorted(p for p in root.iterdir() if paths.hparams(p).is_file()) if root.is_dir() else []
        return cls(([Path(first)] if first is not None else []) + found)

    def _identity(self, experiment):
        if experiment not in self._identities:
            recorded = _hparams(experiment)
            self._identities[experiment] = None if recorded is None else level0_identity(recorded)
        return self._identities[experiment]

    def find(self, config, trial_dir):
        """The finished ``level_0`` of trial ``config.seed`` of another experiment with ``config``'s
        level-0 identity, trained on this backend; None if there is none."""
        own = Path(trial_dir).resolve().parent
        wanted = level0_identity(config)
        for experiment in self.folders:
            level0 = paths.level(paths.trial(experiment, config.seed), 0)
            if experiment.resolve() == own or not level0.is_dir():
                continue
            if self._identity(experiment) == wanted and _trained_on(level0) == backend.name():
                return level0
        return None


def check_branch(folder, config, seeds):
    """The experiment folder ``folder`` (``--branch-from``) if trials ``seeds`` of the resolved ``config``
    may branch off it; ConfigError (one line) if it is no experiment, its level 0 was trained with
    other level-0 settings (naming the fields) or on another backend, or it has no finished level 0
    for any of ``seeds``."""
    folder = Path(folder)
    recorded = _hparams(folder) if folder.is_dir() else None
    if recorded is None:
        raise ConfigError(f"--branch-from {folder} is not a lottery experiment folder (one with hparams.json, "
                          "e.g. runs/lottery/<hash>).")
    differ = level0_differences(recorded, config)
    if differ:
        ours = level0_identity(config)
        theirs = level0_identity(recorded)
        values = ", ".join(f"{k} ({theirs.get(k)!r} there, {ours.get(k)!r} here)" for k in differ)
        raise ConfigError(f"Cannot branch off {folder}: its level 0 was trained with other settings: {values}. "
                          "Only levels, criterion, mask1, mask0, control, the pruning rates and early_stop may "
                          "differ in a branch.")
    finished = [paths.level(paths.trial(folder, s), 0) for s in seeds]
    finished = [level0 for level0 in finished if level0.is_dir()]
    if not finished:
        raise ConfigError(f"Cannot branch off {folder}: it has no finished level 0 for seed(s) "
                          f"{', '.join(map(str, seeds))}; run that experiment's level 0 first, or drop --branch-from.")
    for level0 in finished:
        trained_on = _trained_on(level0)
        if trained_on != backend.name():
            raise ConfigError(f"Cannot branch off {folder}: {level0} was trained with KERAS_BACKEND={trained_on}; "
                              "branch off it with that backend.")
    return folder


class _SourceGone(SupermaskError):
    """The level folder being copied went away (another process redid it)."""


def _link(source, target):
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy
        try:
            shutil.copy2(source, target)
        except FileNotFoundError:
            raise _SourceGone(f"{source} disappeared while it was copied.") from None


def _check_copy(folder):
    """Read back every file of a copied level: a damaged source is not passed on."""
    for name in (paths.weights_init, paths.weights_final, paths.masks, paths.metrics, paths.model):
        if not name(folder).is_file():
            raise _SourceGone(f"the copy lacks {name(folder).name}: its source went away while it was copied.")
    for path in folder.rglob("*"):
        if path.suffix == ".h5":
            store.load_arrays(path)
        elif path.suffix == ".json":
            store.read_json(path)
        elif path.suffix == ".keras" and not zipfile.is_zipfile(path):
            raise store.CorruptFileError(f"{path} is corrupt: not a .keras archive.", path)


def copy_level(source, target, criterion):
    """Copy the finished level folder ``source`` to ``target`` (which must not exist), atomically, with
    ``metrics.json``'s summary (and its control's) recomputed under ``criterion`` (the early stop).
    Returns None, or one line saying why nothing was copied (the source is damaged or went away)."""
    source, target = Path(source), Path(target)
    try:
        with store.atomic_dir(target) as tmp:
            for path in sorted(source.rglob("*")):
                relative = path.relative_to(source)
                out = tmp / relative
                if any(part.startswith(".") for part in relative.parts):
                    continue  # a temporary
                if path.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                elif path.name == paths.metrics(".").name:
                    metrics = store.read_json(path)
                    if not isinstance(metrics, dict) or not metrics.get("history"):
                        raise store.CorruptFileError(f"{path} is corrupt: it lacks the run's history.", path)
                    summary = json.loads(json.dumps(early_stop.summarize(metrics["history"], criterion)))
                    if summary == metrics.get("summary"):
                        _link(path, out)
                    else:
                        store.write_json(out, {**metrics, "summary": summary})
                else:
                    _link(path, out)
            _check_copy(tmp)
    except (_SourceGone, store.CorruptFileError) as exc:
        return str(exc)
    return None
