"""The kinds of sweep point: one ``Kind`` each, registered in ``KINDS``.

A ``Kind`` says everything the sweep needs to know about one kind of run: the settings a
spec's fields build, where a point's results live and whether they are finished, which
points run together as one task, how a task runs, and the rows a finished point adds to the
grid table. The rest of ``supermask.sweep`` never looks at a kind's name; a new kind of run
is one more registration here.

=================  =====================================  ==========================================
kind               a point's results                       one task
=================  =====================================  ==========================================
lottery            ``<root>/lottery/<hash>/trial_<seed>``  up to ``per_task`` points that share the
                                                           architecture and budget
                                                           (``lottery.SHARED_FIELDS``), trained
                                                           together level by level (``run_many``),
                                                           those of one level 0 side by side
train_supermask    ``<root>/train_supermask/<hash>``       a run of consecutive seeds of otherwise
                                                           equal settings (``run(seeds=N)``)
init_sweep         ``<root>/init_sweep/<digest>.csv``      one point (``init_sweep.run``)
instability        ``<root>/instability/<hash>`` (one     a run of consecutive seeds of otherwise
                   folder for every seed of a setting)     equal settings (``run(trials=N)``)
prune_init         ``<root>/prune_init/<hash>``            one point (``prune_init.run``; its
                                                           ``trials`` field is its seeds)
=================  =====================================  ==========================================

Lottery and supermask points are resolved settings (``recipes.resolve`` on the catalogue's
training-split size, ``supermask.data.train_examples``), with your own model's fingerprint
filled in, so that their folders are the ones ``lottery.run_many`` / ``train_supermask.run``
write; so are instability points (but those measuring a lottery experiment's tickets, whose
network and recipe are the experiment's). A prune_init point's folder is the one
``prune_init.folder`` names (it loads the data and the IMP experiment to resolve it). An init_sweep point is its fields as spelled (``run_dir`` made absolute), checked by
``InitSweepConfig``; its file is named by their ``digest``. ``grid.tasks`` then splits the
groups further where the sweep has more workers than tasks.
"""

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from supermask import (identity, init_sweep, instability, lottery, models, paths, prune_init, recipes, report, results,
                       specs, train_supermask)
from supermask.data import INPUT_SHAPES, NUM_CLASSES, train_examples
from supermask.errors import ConfigError
from supermask.settings import (InstabilityConfig, LotteryConfig, PruneInitConfig, SupermaskConfig, canonical_json,
                                config_hash, to_dict)
from supermask.settings.init_sweep import InitSweepConfig


@dataclass(frozen=True)
class Kind:
    """One kind of sweep point. ``config`` below is what ``build`` returns for a point."""

    name: str  # the spec's ``kind``, and the folder of its results under the sweep's root
    settings: type  # the settings class: a spec may set any of its fields...
    inputs: tuple  # ...and these: "trials" (seeds seed .. seed + trials - 1), "run_dir"
    build: Callable  # (fields) -> config; SupermaskError (or TypeError) if the fields are invalid
    key: Callable  # (config) -> str: points with equal keys are one point
    folder: Callable  # (kind root, config) -> the folder or file of the point's results
    is_finished: Callable  # (folder, config) -> whether the point's results are complete
    group: Callable  # (pending points, per_task) -> tasks, each a list of points run by one call
    encode: Callable  # (configs of one task) -> JSON data, the task's "configs"
    run: Callable  # (kind root, configs JSON, number of points, out) -> None: runs one task here
    rows: Callable  # (folder, config) -> the point's rows of the grid table
    where: Callable  # (folder) -> what the grid table's "folder" column names: the experiment, run or CSV
    figures: Callable = None  # (point folders, out folder, subject) -> figures across the grid, or None

    @property
    def trials(self):
        """Whether ``trials = N`` expands a point into N seeds."""
        return "trials" in self.inputs

    def fields(self):
        """The fields a spec of this kind may set."""
        return {f.name for f in dataclasses.fields(self.settings)} | set(self.inputs)


def digest(data):
    """First 12 hex digits of the SHA-256 of ``data``'s canonical JSON."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:12]


# --- lottery and train_supermask: resolved settings, your own model fingerprinted ----------------

_FINGERPRINTS = {}  # config_hash(settings but the seed) -> fingerprint: one build per architecture


def _resolved(settings):
    """``settings`` resolved as a run resolves them, on the catalogue's training-split size."""
    return recipes.resolve(settings, train_examples(settings.dataset, settings.validation_size))


def _fingerprinted(config, build_model):
    """``config`` with the fingerprint that names the folder of your own model (a builder), as
    ``lottery.run_many`` / ``train_supermask.run`` fill it in (``supermask.identity``): the model is
    built by ``build_model(config, input_shape, num_classes)`` once per architecture, on the
    dataset's input shape. Built-in models keep theirs out of the hash: returned unchanged."""
    if not specs.is_builder(config.model):
        return config
    key = config_hash(dataclasses.replace(config, seed=0))
    if key not in _FINGERPRINTS:
        model = build_model(config, INPUT_SHAPES[config.dataset], NUM_CLASSES[config.dataset])
        _FINGERPRINTS[key] = identity.model_fingerprint(model)
    return dataclasses.replace(config, model_fingerprint=_FINGERPRINTS[key])


def _lottery_model(config, input_shape, num_classes):
    return models.build(config.model, input_shape, num_classes, seed=config.seed)


def _build_lottery(fields):
    return _fingerprinted(_resolved(LotteryConfig(**fields)), _lottery_model)


def _lottery_tasks(points, per_task):
    """Points equal in ``lottery.SHARED_FIELDS``, ``per_task`` at a time; within each such group, points
    of one level-0 identity and seed (``lottery.trunk.level0_key``) side by side, so that a task holds
    the points that share a level 0 (trained once for them all) before it splits them up."""
    groups = {}
    for p in points:
        groups.setdefault(tuple(getattr(p.config, f) for f in lottery.SHARED_FIELDS), []).append(p)
    tasks = []
    for group in groups.values():
        trunks = {}
        for p in group:
            trunks.setdefault(lottery.trunk.level0_key(p.config), []).append(p)
        group = [p for same in trunks.values() for p in same]
        tasks += [group[i:i + per_task] for i in range(0, len(group), per_task)]
    return tasks


def _run_lottery(root, configs, count, out):
    lottery.run_many([LotteryConfig(**c) for c in configs], root)


def _lottery_figures(folders, out, subject):
    experiments = sorted({Path(f).parent for f in folders})
    figures, _ = report.lottery_report([results.load_experiment(e) for e in experiments], out, subject=subject)
    return figures


def _build_supermask(fields):
    return _fingerprinted(_resolved(SupermaskConfig(**fields)), train_supermask.build)


def _seed_runs(points, per_task):
    """Runs of consecutive seeds of points equal but for the seed (``train_supermask.run(seeds=N)``
    learns seeds seed .. seed + N - 1 together); ``per_task`` does not apply."""
    groups = {}
    for p in points:
        groups.setdefault(config_hash(dataclasses.replace(p.config, seed=0)), []).append(p)
    out = []
    for group in groups.values():
        group.sort(key=lambda p: p.config.seed)
        run = [group[0]]
        for p in group[1:]:
            if p.config.seed == run[-1].config.seed + 1:
                run.append(p)
            else:
                out.append(run)
                run = [p]
        out.append(run)
    return out


def _run_supermask(root, configs, count, out):
    train_supermask.run(SupermaskConfig(**configs[0]), out_root=root, seeds=count, overwrite=True)


def _supermask_rows(folder, config):
    _, metrics = results.load_run(folder)
    final = metrics.get("final", {})
    return [{"test_accuracy": final.get("deterministic", {}).get("test_accuracy"),
             "sampled_test_accuracy": final.get("sampled", {}).get("test_accuracy_mean"),
             "density": metrics.get("density", {}).get("total", {}).get("inference")}]


# --- init_sweep: the fields as spelled ------------------------------------------------------------


def _build_init_sweep(fields):
    if "run_dir" not in fields:
        raise ConfigError("An init_sweep point needs run_dir (a trained run or a lottery level_0 folder). "
                          f"Received: {', '.join(sorted(fields)) or 'no fields'}")
    InitSweepConfig(**{k: v for k, v in fields.items() if k != "run_dir"})  # checks every value
    return {**fields, "run_dir": str(Path(fields["run_dir"]).resolve())}


def _run_init_sweep(root, configs, count, out):
    fields = dict(configs[0])
    run_dir = fields.pop("run_dir")
    init_sweep.run(run_dir, InitSweepConfig(**fields), out=out)


# --- instability and prune_init: the analyses ----------------------------------------------------


def _build_instability(fields):
    config = InstabilityConfig(**fields)
    if config.experiment is not None:  # the experiment's network and recipe: nothing to resolve
        return dataclasses.replace(config, experiment=str(Path(config.experiment).resolve()))
    return _fingerprinted(_resolved(config), _lottery_model)


def _run_instability(root, configs, count, out):
    instability.run(InstabilityConfig(**configs[0]), root=root, trials=count)


def _instability_rows(folder, config):
    """The point's own measurements (its seed): one row per start (k, or level)."""
    return [{"level": r["level"], "k": r["k"], "remaining": r["remaining"],
             **{f"instability_{split}": v["instability"] for split, v in r["splits"].items()}}
            for r in instability.read_points(folder) if r["seed"] == config.seed]


def _build_prune_init(fields):
    config = PruneInitConfig(**fields)
    if config.imp is not None:
        imp = Path(config.imp).resolve()
        if not paths.hparams(imp).is_file():  # its folder's name needs the experiment: refuse the point alone
            raise ConfigError(f"imp={config.imp} is not a lottery experiment yet (no {paths.hparams(imp).name}): run "
                              "its lottery sweep or command first.")
        config = dataclasses.replace(config, imp=str(imp))
    return config


def _run_prune_init(root, configs, count, out):
    prune_init.run(PruneInitConfig(**configs[0]), root=root)


KINDS = {kind.name: kind for kind in (
    Kind("lottery", LotteryConfig, ("trials",), build=_build_lottery, key=config_hash,
         folder=lambda root, c: paths.trial(paths.experiment(root, c.experiment_hash()), c.seed),
         is_finished=lambda folder, c: paths.level(folder, c.levels).is_dir(),
         group=_lottery_tasks, encode=lambda configs: [to_dict(c) for c in configs], run=_run_lottery,
         rows=lambda folder, c: results.trial_rows(folder), where=lambda folder: folder.parent,
         figures=_lottery_figures),
    Kind("train_supermask", SupermaskConfig, ("trials",), build=_build_supermask, key=config_hash,
         folder=lambda root, c: root / config_hash(c), is_finished=lambda folder, c: results.is_run(folder),
         group=_seed_runs, encode=lambda configs: [to_dict(configs[0])],  # the first seed; the count says how many
         run=_run_supermask, rows=_supermask_rows, where=lambda folder: folder),
    Kind("init_sweep", InitSweepConfig, ("run_dir",), build=_build_init_sweep, key=canonical_json,
         folder=lambda root, c: root / f"{digest(c)}.csv", is_finished=lambda folder, c: folder.is_file(),
         group=lambda points, per_task: [[p] for p in points], encode=list, run=_run_init_sweep,
         rows=lambda folder, c: results.read_init_sweep(folder), where=lambda folder: folder),
    Kind("instability", InstabilityConfig, ("trials",), build=_build_instability,
         key=lambda c: canonical_json(to_dict(c)), folder=lambda root, c: instability.folder(root, c),
         is_finished=lambda folder, c: instability.is_finished(folder, c), group=_seed_runs,
         encode=lambda configs: [to_dict(configs[0])],  # the first seed; the count says how many
         run=_run_instability, rows=_instability_rows, where=lambda folder: folder),
    Kind("prune_init", PruneInitConfig, (), build=_build_prune_init, key=lambda c: canonical_json(to_dict(c)),
         folder=lambda root, c: prune_init.folder(root, c), is_finished=lambda folder, c: prune_init.is_finished(folder),
         group=lambda points, per_task: [[p] for p in points], encode=lambda configs: [to_dict(c) for c in configs],
         run=_run_prune_init, rows=lambda folder, c: prune_init.rows(folder), where=lambda folder: folder),
)}


def get(name):
    """The ``Kind`` registered as ``name``; ConfigError listing the kinds otherwise."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}. Received: kind={name!r}") from None


def run_task(payload):
    """Run one task in this process (what a worker calls): ``payload`` is ``grid.task_payload``'s
    JSON data, ``{"kind", "root", "configs", "seeds" (its number of points), "out" (its first
    point's results)}``."""
    kind = get(payload["kind"])
    kind.run(Path(payload["root"]) / kind.name, payload["configs"], payload["seeds"], Path(payload["out"]))
