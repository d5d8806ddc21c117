"""The instability run: parents trained once to max(k), two copies per (seed, k) trained together, paths
measured, files written (see ``supermask.instability``)."""

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from supermask import backend, identity, paths, recipes, runs, store
from supermask import masks as M
from supermask.data import load_dataset
from supermask.engine import train_many
from supermask.engine.driver import duration
from supermask.errors import ConfigError
from supermask.instability import figures, output
from supermask.instability.core import copy_seeds
from supermask.instability.path import BN_EXAMPLES, evaluate_path, split_arrays
from supermask.instability.source import level_start, load_experiment, select
from supermask.models import build
from supermask.optimizers import compile_model, recipe_optimizer
from supermask.pruning import overall_density
from supermask.seeds import MAX_SEED
from supermask.settings import to_dict
from supermask.settings.instability import InstabilityConfig

DEFAULT_ROOT = "runs/instability"


@dataclass
class Result:
    """A finished run: ``path`` (its folder), ``rows`` (``path.csv``'s rows), ``summary`` (``summary.csv``'s)."""

    path: Path
    rows: list
    summary: list


@dataclass
class Start:
    """Where two copies start: trial ``seed``, iteration ``k``, lottery ``level`` (None: dense), the
    weights and masks (None: the model's own, all ones)."""

    seed: int
    k: int
    level: int = None
    weights: dict = None
    masks: dict = None


def folder(root, config):
    """The run folder of resolved ``config``: ``<root>/<hash of every field but the seed>``."""
    return Path(root) / config.run_hash()


def is_finished(run_dir, config=None):
    """Whether the run wrote its summary (and, with ``config``, measured every k of its seed)."""
    run_dir = Path(run_dir)
    if not paths.experiment_summary(run_dir).is_file():
        return False
    if config is None or config.experiment is not None:
        return True
    return all(paths.instability_point(run_dir, config.seed, k).is_file() for k in config.ks)


def rows(run_dir):
    """The run's summary rows (dicts, ``output.summary_rows``) from its finished points."""
    return output.summary_rows(output.read_points(run_dir))


def run(config=None, root=DEFAULT_ROOT, data_dir=None, verbose=1, *, trials=1, model=None, data=None, engine=None,
        **fields):
    """Measure the instability of a network at each k (or of a lottery experiment's tickets); a ``Result``.

    ``config``: an ``InstabilityConfig``, or its fields as keywords (``ks="0,100", iterations=3000``),
    which also override a given config. ``trials``: seeds ``config.seed`` ... (a lottery experiment: its
    own trials from ``config.seed``; None there means every trial). ``model`` and ``data`` as in
    ``supermask.lottery.run``. Finished points are kept: a rerun measures only what is missing.
    """
    config = runs.settings_for(InstabilityConfig, config, model, **fields)
    store.check_output_dir(root, "the results root (--root)")
    say = print if verbose else (lambda *a, **k: None)
    if config.experiment is not None:
        experiment = load_experiment(config.experiment)
        train_config = dataclasses.replace(experiment.config, seed=config.seed)
        if data is None:
            data = load_dataset(train_config.dataset, data_dir=data_dir, validation_size=train_config.validation_size)
        seeds = None if trials is None else _seeds(config, trials)
        starts = [Start(s, experiment.k, level) for s, level in select(experiment, seeds, config.levels)]
    else:
        data, config = runs.load_data(config, data, data_dir)
        config = recipes.resolve(config, data)
        config = identity.identify(config, build(config.model, data.input_shape, data.num_classes, seed=0), data)
        train_config, experiment = config, None
        starts = [Start(s, k) for s in _seeds(config, trials) for k in config.ks]
    total = recipes.iterations(train_config, data)
    if max(s.k for s in starts) >= total:
        raise ConfigError(f"Every k must be below the {total} training iterations. "
                          f"Received: k={max(s.k for s in starts)}")
    run_dir = folder(root, config)
    with store.exclusive_lock(store.lock_path(run_dir), f"The instability run {run_dir}", rerun="rerun"):
        hparams = {**{k: v for k, v in to_dict(config).items() if k != "seed"}, "total_iterations": total,
                   "backend": backend.name()}
        if experiment is not None:
            hparams["experiment_hparams"] = to_dict(train_config)
        if paths.hparams(run_dir).is_file():
            identity.check_same(store.read_json(paths.hparams(run_dir)), config, f"Instability run {run_dir}")
        store.write_json(paths.hparams(run_dir), hparams)
        todo = [s for s in starts if not paths.instability_point(run_dir, s.seed, s.k, s.level).is_file()]
        say(f"Instability run {run_dir}: {len(starts)} start(s), {len(starts) - len(todo)} finished; "
            f"{train_config.model} on {data.name}, {total} iterations, {config.points} points, bn {config.bn}, "
            f"backend {backend.name()}")
        if experiment is None:
            _dense_starts(todo, train_config, data, total, engine, verbose)
        else:
            for start in todo:
                start.weights, start.masks = level_start(experiment, start.seed, start.level)
        for k in sorted({s.k for s in todo}):
            _measure(run_dir, [s for s in todo if s.k == k], config, train_config, data, total, engine, verbose, say)
        records = output.read_points(run_dir)
        summary = output.write_tables(run_dir, records)
        names = figures.draw(records, summary, paths.report_dir(run_dir))
        report = output.write_markdown(run_dir, summary, hparams, names)
    say(f"\n{output.format_table(summary)}\n\nWrote {paths.experiment_summary(run_dir)}, {paths.path_table(run_dir)} "
        f"and {report}")
    return Result(run_dir, output.path_rows(records), summary)


def _seeds(config, trials):
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be an integer >= 1. Received: trials={trials!r}")
    if config.seed + trials - 1 > MAX_SEED:
        raise ConfigError(f"The trial seeds {config.seed} .. {config.seed + trials - 1} must stay <= {MAX_SEED}; "
                          "lower --seed or --trials.")
    return [config.seed + t for t in range(trials)]


def _training_split(data):
    """``data`` without its validation and test examples: the parents and copies train exactly as with
    them (evaluation changes no state), but their val / test curves are never read here, only the final
    weights (the path is evaluated afterwards), so the record points evaluate nothing but report the
    training loss."""
    return dataclasses.replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0], x_test=data.x_test[:0],
                               y_test=data.y_test[:0])


def _dense_starts(todo, config, data, total, engine, verbose):
    """Fill in each start's weights: the seeded init for k = 0; for k > 0 the snapshots of one parent per
    seed, trained once (every seed's parent in one ``train_many`` call) to the largest k, with the
    recipe's optimiser over the full budget (so its schedule is the one the copies continue)."""
    seeds = sorted({s.seed for s in todo})
    keras.backend.clear_session()
    parents = [build(config.model, data.input_shape, data.num_classes, seed=seed) for seed in seeds]
    init = {seed: M.get_weights(model) for seed, model in zip(seeds, parents)}
    later = sorted({s.k for s in todo if s.k > 0})
    snapshots = {seed: {} for seed in seeds}
    if later:
        if verbose:
            print(f"Parents: training {len(seeds)} network(s) to iteration {later[-1]} (snapshots at k = "
                  f"{', '.join(map(str, later))})")
        for model in parents:
            compile_model(model, recipe_optimizer(config, total))
        results = train_many(parents, _training_split(data), iterations=later[-1], batch_size=config.batch_size, seeds=seeds,
                             eval_every=min(config.eval_every, later[-1]), snapshot_iterations=later,
                             weight_decay=config.weight_decay or 0.0, augment=bool(config.augment),
                             labels=[f"parent seed {s}" for s in seeds], verbose=verbose, engine=engine)
        snapshots = {seed: result.snapshots for seed, result in zip(seeds, results)}
    for start in todo:
        start.weights = init[start.seed] if start.k == 0 else snapshots[start.seed][start.k]


def _measure(run_dir, starts, config, train_config, data, total, engine, verbose, say):
    """Train two copies of every start (all from iteration k) in one ``train_many`` call, then measure
    and write each start's path."""
    k = starts[0].k
    # A lottery experiment's Mask-0 action other than "mask" keeps pruned weights at frozen values
    # (``actions``): its tickets are built that way here too, so those values stay fixed on the path.
    freeze = getattr(train_config, "mask0", "mask") != "mask"
    keras.backend.clear_session()
    models, seeds, labels = [], [], []
    for start in starts:
        for copy, seed in enumerate(copy_seeds(start.seed, k)):
            model = build(train_config.model, data.input_shape, data.num_classes, seed=start.seed,
                          freeze_pruned=freeze and start.level is not None and start.level > 0)
            M.set_weights(model, start.weights)
            if start.masks is not None:
                M.set_masks(model, start.masks)
            compile_model(model, recipe_optimizer(train_config, total, start_iteration=k))
            models.append(model)
            seeds.append(seed)
            name = f"seed {start.seed}" + ("" if start.level is None else f" level {start.level}")
            labels.append(f"{name} copy {copy + 1}")
    say(f"k = {k}: {len(models)} copies trained together from iteration {k} to {total}")
    train_many(models, _training_split(data), iterations=total, batch_size=train_config.batch_size, seeds=seeds,
               eval_every=min(train_config.eval_every, total - k), start_iteration=k,
               weight_decay=train_config.weight_decay or 0.0, augment=bool(train_config.augment), labels=labels,
               verbose=verbose, engine=engine)
    arrays = {split: split_arrays(data, split, config.train_examples) for split in config.splits}
    bn_x = data.x_train[:BN_EXAMPLES] if config.bn == "recompute" else None
    evaluator = models[0]  # one model (one compiled forward pass) evaluates every path of this k
    for i, start in enumerate(starts):
        began = time.perf_counter()
        a, b = models[2 * i], models[2 * i + 1]
        masks = M.get_masks(a)
        M.set_masks(evaluator, masks)
        measured = evaluate_path(evaluator, M.get_weights(a), M.get_weights(b), arrays, config.points, config.bn,
                                 bn_x)
        remaining = 100.0 * overall_density(masks)
        seconds = time.perf_counter() - began
        store.write_json(paths.instability_point(run_dir, start.seed, k, start.level),
                         output.point_record(start.seed, k, start.level, remaining, measured, seconds))
        where = f"seed {start.seed}" + ("" if start.level is None else f" level {start.level}")
        say(f"k = {k}, {where}: instability " + ", ".join(f"{split} {p.instability:.2f} pp (endpoints "
                                                          f"{p.errors[0]:.2f} / {p.errors[-1]:.2f} %)"
                                                          for split, p in measured.items())
            + f"; {config.points} points in {duration(seconds)}")
