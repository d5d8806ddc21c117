"""Names for people and for files, as pure functions of hyperparameters and paths: experiment
labels (what differs between experiments), file stems, titles, early-stop wording and the ticks
of the % remaining axis. No drawing, no file I/O."""

import json
import math
import os
import re
from collections import Counter
from pathlib import Path

from supermask import early_stop as stopping

MOST_TICKS = 8


def hparam(h, key, default):
    """``h[key]``, or ``default`` where it is absent or null (older folders store null for a
    setting they left to the default: ``"optimizer": null`` is Adam, not "None"). Not ``or``:
    a seed or a rate of 0 is a value."""
    value = h.get(key)
    return default if value is None else value


def remaining_ticks(values, most=MOST_TICKS):
    """Ticks for a log axis of % remaining: the data's own values, largest first, thinned so that
    neighbours lie at least 1/``most`` of the log range apart (the largest and smallest always kept)."""
    values = sorted({float(v) for v in values if v > 0}, reverse=True)
    if len(values) < 2:
        return values
    gap = math.log10(values[0] / values[-1]) / most
    ticks = [values[0]]
    for v in values[1:-1]:
        if math.log10(ticks[-1] / v) >= gap and math.log10(v / values[-1]) >= gap:
            ticks.append(v)
    return ticks + [values[-1]]


def tick_label(value):
    """``51.2``, ``7``, ``0.29``: one decimal from 1 % up, two significant digits below."""
    return f"{value:.1f}".removesuffix(".0") if value >= 1 else f"{value:.2g}"


def early_stop(hparams):
    """The early-stop criterion of an experiment or run (folders from before the field: the default)."""
    return hparams.get("early_stop") or stopping.DEFAULT


def early_stop_text(hparams, short=False):
    """What the early-stop iteration is: ``the iteration of minimum validation loss (...)``, or
    with ``short`` ``min. val. loss`` (``supermask.early_stop`` words them)."""
    name = early_stop(hparams)
    return (stopping.SHORT if short else stopping.DESCRIPTIONS).get(name, name)


def _value(v):
    """A hyperparameter's value in a label: None -> default, [[name, rate]] -> name:rate."""
    if v is None:
        return "default"
    if isinstance(v, (list, tuple)):
        return ",".join(":".join(map(str, x)) if isinstance(x, (list, tuple)) else str(x) for x in v) or "default"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _model(h):
    return f"{hparam(h, 'model', '?')}/{hparam(h, 'dataset', '?')}"


def experiment_labels(hparams, names=None):
    """One label per experiment that tells it from the others: ``model/dataset`` and then each field
    (sorted) whose value differs between the ``hparams`` dicts (``rate_fc=0.3``); experiments whose
    labels would still be equal (same hyperparameters: other seeds) get their ``names`` too."""
    hs = [{**h, "early_stop": early_stop(h)} for h in hparams]
    keys = sorted(k for k in {k for h in hs for k in h} - {"model", "dataset"}
                  if len({json.dumps(h.get(k), sort_keys=True, default=str) for h in hs}) > 1)
    labels = [" · ".join([_model(h), *(f"{k}={_value(h.get(k))}" for k in keys)]) for h in hs]
    if names:
        count = Counter(labels)
        labels = [f"{label} · {name}" if count[label] > 1 else label for label, name in zip(labels, names)]
    return labels


def experiment_names(folders):
    """Each folder's path below the folders' deepest common parent (one folder: its name), which
    tells apart experiments of the same hash under different roots."""
    folders = [Path(f).absolute() for f in folders]
    if len(folders) == 1:
        return [folders[0].name]
    common = os.path.commonpath(folders)
    return [f.relative_to(common).as_posix() if f != Path(common) else f.name for f in folders]


def file_stems(names):
    """``names`` made safe and unique for file names: runs of other characters than letters,
    digits, "." and "-" become "_"; a repeat gets ``_2``, ``_3``..."""
    stems = []
    for name in names:
        stem = base = re.sub(r"[^A-Za-z0-9.-]+", "_", name, flags=re.ASCII)
        k = 2
        while stem in stems:
            stem, k = f"{base}_{k}", k + 1
        stems.append(stem)
    return stems


def labels_of(experiments):
    """The label of each ``results.Experiment``: its own for one, what differs for several."""
    if len(experiments) == 1:
        return [experiments[0].label()]
    return experiment_labels([e.hparams for e in experiments], experiment_names([e.path for e in experiments]))


def stems_of(experiments):
    """A file stem per ``results.Experiment``, from its path below the common folder."""
    return file_stems(experiment_names([e.path for e in experiments]))


def lottery_title(experiments, what, subject=None):
    """``subject: what, mean ± std over N trials`` (subject: the experiment's label, or their count)."""
    trials = sorted({len(e.trials) for e in experiments})
    n = "/".join(map(str, trials))
    subject = subject or (experiments[0].label() if len(experiments) == 1 else f"{len(experiments)} experiments")
    return f"{subject}: {what}, mean ± std over {n} trial{'s' if trials != [1] else ''}"


def run_label(h):
    """``model/dataset · supermask learner, weights ... · seed N`` of a train or train_supermask run."""
    parts = [_model(h)]
    if "learner" in h:
        parts.append(f"supermask {h['learner']}, weights {hparam(h, 'weights', '?')}" + (", DWR" if h.get("dwr") else ""))
    parts.append(f"seed {hparam(h, 'seed', '?')}")
    return " · ".join(parts)
