"""The runner: settings -> every method x variant x density x seed pruned at init, trained K at a time.

For each seed the model is built (``models.build(seed=...)``), scored at init on
``score_batches`` mini-batches of the training split (drawn by their own generator, from the seed)
and pruned to every density (``scores.masks_at_densities``); the variant is applied
(``sanity``); then all networks still to train run through ``engine.train_many`` in groups of at
most ``GROUP`` (one compiled program per group), with the model's recipe (``recipes.resolve``,
``optimizers.recipe_optimizer``). Each network's row is written atomically to
``<folder>/cells/<cell>.json`` as soon as its group finishes, so a rerun trains only what is
missing. The folder (``<root>/<config hash>``) holds ``hparams.json``, ``results.csv``,
``summary.csv`` and ``report/``; one process at a time holds its lock (``.lock``).
"""

import csv
import dataclasses
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from supermask import backend, identity, paths, recipes, runs, store
from supermask.engine import train_many
from supermask.errors import ConfigError
from supermask.masks import get_weights, set_masks, set_weights
from supermask.models import build
from supermask.optimizers import compile_model, recipe_optimizer
from supermask.prune_init import imp as imp_source
from supermask.prune_init import output, sanity
from supermask.prune_init.scores import ScoreOptions, get_method, masks_at_densities
from supermask.pruning import overall_density
from supermask.seeds import MAX_SEED
from supermask.settings import PruneInitConfig, config_hash, to_dict

GROUP = 32  # networks per train_many call
RESULTS, SUMMARY, CELLS = "results.csv", "summary.csv", "cells"


@dataclass(frozen=True)
class Cell:
    """One network: ``method`` ("imp" for the lottery's), ``variant``, target ``density``, ``seed``,
    ``level`` (IMP's, else None)."""

    method: str
    variant: str
    density: float
    seed: int
    level: int = None

    @property
    def name(self):
        where = f"L{self.level}" if self.level is not None else f"d{self.density:g}"
        return f"{self.method}-{self.variant}-{where}-s{self.seed}"


@dataclass
class PruneInitResult:
    """What ``run`` returns: the experiment ``path``, its ``rows`` and ``summary`` (``output``)."""

    path: Path
    rows: list
    summary: list
    config: PruneInitConfig = None


def _cell_path(folder, cell):
    return Path(folder) / CELLS / f"{cell.name}.json"


def _seeds(config):
    return [config.seed + t for t in range(config.trials)]


def _derived(seed, *names):
    """A seed in [0, MAX_SEED] derived from ``seed`` and ``names`` (reproducible, per purpose)."""
    return int(np.random.default_rng([seed, *(zlib.crc32(str(n).encode()) for n in names)]).integers(MAX_SEED))


def resolve(config=None, root="runs/prune_init", data=None, data_dir=None, model=None, **fields):
    """``(resolved config with the fingerprints, Dataset, ImpSource or None, folder)``: the checks
    every entry point does before any work."""
    config = runs.settings_for(PruneInitConfig, config, model, **fields)
    for method in config.method_list():
        get_method(method)
    if config.seed + config.trials - 1 > MAX_SEED:
        raise ConfigError(f"The seeds {config.seed} .. {config.seed + config.trials - 1} must stay <= {MAX_SEED}; "
                          "lower --seed or --trials.")
    store.check_output_dir(root, "the experiments root (--root)")
    data, config = runs.load_data(config, data, data_dir)
    config = recipes.resolve(config, data)
    source = None
    if config.imp is not None:
        source = imp_source.load(config.imp, config)
        config = dataclasses.replace(config, imp_fingerprint=source.fingerprint)
    config = identity.identify(config, build(config.model, data.input_shape, data.num_classes, seed=config.seed),
                               data)
    return config, data, source, Path(root) / config_hash(config)


def folder(root, config, data_dir=None):
    """The experiment folder ``run`` writes for ``config`` under ``root`` (loads the data to resolve it)."""
    return resolve(config, root, data_dir=data_dir)[3]


def is_finished(folder):
    """Whether ``folder`` holds a finished run (its summary.csv written after its last network)."""
    return (Path(folder) / SUMMARY).is_file()


def rows(folder):
    """The summary rows of a finished ``folder`` (dicts, numbers as numbers; see ``output``)."""
    path = Path(folder) / SUMMARY
    if not path.is_file():
        raise ConfigError(f"{folder} has no {SUMMARY}: run python -m supermask.prune_init first.")
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _number(text):
    if text in ("", None):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def plan(config, source):
    """Every cell of ``config`` (and of the IMP experiment ``source``), in training order."""
    cells = [Cell(m, v, d, s) for s in _seeds(config) for m in config.method_list()
             for v in config.variant_list() for d in config.densities]
    if source is not None:
        for lv in source.levels:
            cells.append(Cell("imp", "none", round(lv.density, 6), lv.seed, lv.level))
            cells += [Cell("imp", v, round(lv.density, 6), lv.seed, lv.level) for v in config.variant_list()
                      if v in ("shuffle", "reinit") and lv.level > 0]
    return cells


def _score_batches(config, data, seed):
    n = len(data.x_train)
    size = min(config.score_batch_size, n)
    order = np.random.default_rng(_derived(seed, "score-batches")).permutation(n)
    return [(data.x_train[order[i * size:(i + 1) * size]], data.y_train[order[i * size:(i + 1) * size]])
            for i in range(config.score_batches) if (i + 1) * size <= n] or [(data.x_train[:size], data.y_train[:size])]


def _fresh(config, data, seed, cache):
    """The weights of the model built with a seed derived from ``seed``: a second draw of its
    initialisers (Frankle et al. 2021's reinitialisation); ``cache``: a dict kept per run."""
    if seed not in cache:
        cache[seed] = get_weights(build(config.model, data.input_shape, data.num_classes,
                                        seed=_derived(seed, "reinit")))
    return cache[seed]


def start_states(config, data, cells, source, verbose=1):
    """``{cell: (start weights, masks, start iteration)}`` for the cells to train."""
    say = print if verbose else (lambda *a, **k: None)
    options = ScoreOptions(config.grasp_temperature, config.synflow_rounds)
    out, fresh = {}, {}
    for seed in sorted({c.seed for c in cells if c.method != "imp"}):
        model = build(config.model, data.input_shape, data.num_classes, seed=seed)
        weights, batches = get_weights(model), _score_batches(config, data, seed)
        for method in dict.fromkeys(c.method for c in cells if c.seed == seed and c.method != "imp"):
            mine = [c for c in cells if c.seed == seed and c.method == method]
            started = time.perf_counter()
            masks = {}
            for invert in sorted({c.variant == "invert" for c in mine}):
                densities = sorted({c.density for c in mine if (c.variant == "invert") == invert}, reverse=True)
                masks[invert] = masks_at_densities(model, batches, method, densities, config.scope,
                                                   _derived(seed, "scores", method), options, invert)
            say(f"Scored {method} at init (seed {seed}, {len(mine)} network(s)) in "
                f"{time.perf_counter() - started:.1f} s")
            for c in mine:
                m = masks[c.variant == "invert"][c.density]
                if c.variant == "shuffle":
                    m = sanity.shuffle(m, np.random.default_rng(_derived(seed, c.name)))
                start = sanity.reinit(weights, _fresh(config, data, seed, fresh), m)[0] if c.variant == "reinit" else weights
                out[c] = (start, m, 0)
    for c in (c for c in cells if c.method == "imp"):
        level = next(lv for lv in source.levels if lv.seed == c.seed and lv.level == c.level)
        rewind, m = source.rewind_weights(c.seed), source.masks(level)
        if c.variant == "shuffle":
            m = sanity.shuffle(m, np.random.default_rng(_derived(c.seed, c.name)))
        start = sanity.reinit(rewind, _fresh(config, data, c.seed, fresh), m)[0] if c.variant == "reinit" else rewind
        out[c] = (start, m, int(source.hparams["rewind_iteration"]))
    return out


def train_cells(config, data, states, folder, verbose=1, engine=None):
    """Train the cells of ``states`` in groups (same start iteration, at most ``GROUP``); each row is
    written to its cell file as soon as its group finishes."""
    iterations = recipes.iterations(config, data)
    by_start = {}
    for cell, state in states.items():
        by_start.setdefault(state[2], []).append(cell)
    for start_iteration, cells in by_start.items():
        for i in range(0, len(cells), GROUP):
            group = cells[i:i + GROUP]
            if verbose:
                print(f"Training {len(group)} network(s) together ({iterations - start_iteration} iterations from "
                      f"{start_iteration}, backend {backend.name()}): {', '.join(c.name for c in group)}")
            keras.backend.clear_session()
            models = []
            for cell in group:
                start, masks, _ = states[cell]
                model = build(config.model, data.input_shape, data.num_classes, seed=cell.seed)
                set_weights(model, start)
                set_masks(model, masks)
                compile_model(model, recipe_optimizer(config, iterations, start_iteration=start_iteration))
                models.append(model)
            results = train_many(models, data, iterations=iterations, batch_size=config.batch_size,
                                 seeds=[c.seed for c in group], eval_every=config.eval_every,
                                 start_iteration=start_iteration, weight_decay=config.weight_decay or 0.0,
                                 augment=bool(config.augment), verbose=verbose, engine=engine,
                                 labels=[c.name for c in group])
            for cell, result in zip(group, results):
                metrics = runs.metrics_of(result, config.early_stop)
                r = output.row(cell, 100 * overall_density(states[cell][1]), metrics["summary"],
                               result.seconds / len(group))
                store.write_json(_cell_path(folder, cell), {"row": r, "history": result.history})


def _imp_row(cell, source):
    level = next(lv for lv in source.levels if lv.seed == cell.seed and lv.level == cell.level)
    return output.row(cell, 100 * level.density, level.summary, level.seconds)


def run(config=None, root="runs/prune_init", data_dir=None, verbose=1, *, data=None, model=None, engine=None,
        report=True, **fields):
    """Prune at init, train and compare; returns a ``PruneInitResult`` (``.path``, ``.rows``, ``.summary``).

    ``config``: a ``PruneInitConfig``, or its fields as keywords (``methods="snip,synflow"``,
    ``densities="0.2,0.05"``, ``trials=2``, ``iterations=2000``...), which also override a given
    config. ``data``: a ``Dataset`` or your arrays (as ``lottery.run``); ``model``: a name, a builder
    or a model instance (as ``lottery.run``). Finished cells are kept: a rerun trains only what is
    missing. ``report``: also write ``report/`` (matplotlib).
    """
    config, data, source, out = resolve(config, root, data, data_dir, model, **fields)
    say = print if verbose else (lambda *a, **k: None)
    with store.exclusive_lock(paths.lock(out), f"The prune-init experiment {out}", rerun="rerun"):
        store.write_json(paths.hparams(out), to_dict(config))
        cells = plan(config, source)
        todo = [c for c in cells if not _cell_path(out, c).is_file()]
        say(f"Experiment {out} ({config.model} on {data.name}, backend {backend.name()}): {len(cells)} networks, "
            f"{len(cells) - len(todo)} finished")
        for c in (c for c in todo if c.method == "imp" and c.variant == "none"):
            store.write_json(_cell_path(out, c), {"row": _imp_row(c, source)})
        todo = [c for c in todo if not (c.method == "imp" and c.variant == "none")]
        started = time.perf_counter()
        if todo:
            train_cells(config, data, start_states(config, data, todo, source, verbose), out, verbose, engine)
            say(f"{len(todo)} network(s) scored and trained in {time.perf_counter() - started:.1f} s")
        all_rows = [store.read_json(_cell_path(out, c))["row"] for c in cells]
        summary = output.summarize(all_rows)
        output.write_tables(out, all_rows, summary, RESULTS, SUMMARY)
        if report:
            output.write_report(out, summary, f"{config.model} on {data.name}, {config.scope} pruning")
    say(output.format_summary(summary))
    say(f"Wrote {out / RESULTS}, {out / SUMMARY}" + (f" and {out / 'report' / 'report.md'}" if report else ""))
    return PruneInitResult(out, all_rows, summary, config)
