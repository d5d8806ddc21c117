"""Iterative magnitude pruning (Frankle & Carbin 2019), with the controls of Zhou et al. 2019.

For each trial (seed), level 0 trains the dense network from its initial weights W0.
Level L >= 1 scores the weights of level L-1 with a criterion over (W0, final weights),
prunes each layer to ``(1 - rate) ** L`` of its weights, builds the start of the next
run with the Mask-1 / Mask-0 actions (by default: kept weights reset to W0, pruned
weights zero), and retrains. With ``rewind_iteration = k`` the reset point is the
weights at iteration k of level 0 and each level trains from iteration k onwards
(late rewinding, Frankle et al. 2019). The random-reinit control of every level trains
the same masks from fresh random weights.

Layout: ``<root>/<hash>/hparams.json`` and ``<root>/<hash>/trial_<seed>/level_<L>/``
with ``weights_init.h5``, ``weights_final.h5``, ``masks.h5``, ``metrics.json``, ``model.keras`` (and
``control/`` holding the same). Each level folder is built under a temporary name and
renamed when complete, so a killed run leaves finished levels or nothing; ``--resume``
continues from the last finished level and gives the same result as an uninterrupted run.
A trial is run by one process at a time: it holds an exclusive lock on
``trial_<seed>/.lock`` (``fcntl.flock``, dropped by the kernel when the process dies), and
a second process on the same trial stops with a message naming the holder's PID.
``--redo-level L`` deletes level L and every later level of each trial, then reruns them.

    KERAS_BACKEND=jax python -m supermask.lottery --model fc --dataset mnist --levels 11 \\
        --iterations 5000 --data-dir ../shared/data/mnist --root runs/lottery
"""

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from supermask import backend, early_stop, identity, paths, store
from supermask import masks as M
from supermask.actions import apply_actions
from supermask.config import MAX_SEED, LotteryConfig, to_dict
from supermask.criteria import compute_scores
from supermask.errors import ConfigError, SupermaskError
from supermask.convert import layer_kind
from supermask.models import build, prunable_layers
from supermask.results import format_aggregate, load_experiment, read_metrics, trial_rows, write_experiment_summary
from supermask.engine import train_many
from supermask.pruning import density, keep_count, overall_density, prune_global_level, prune_level
from supermask.train import compile_model, config_for, load_data, recipe_optimizer, summarize, write_run_files


@dataclass
class Job:
    """One network of a level: its start weights, masks and where its results go."""

    config: LotteryConfig  # the trial's (its seed orders the batches)
    folder: Path  # inside the level's temporary folder: "." for the ticket, "control"
    start: dict  # {"layer/var": array} to load
    masks: dict
    freeze_pruned: bool = False


@dataclass(frozen=True)
class Layout:
    """The prunable layers of a config's model: ``kinds`` ({layer: "conv" | "dense"}, in model
    order: the last is the output layer) and ``sizes`` ({layer: kernel entries})."""

    kinds: dict
    sizes: dict

    @classmethod
    def of(cls, config, data, model=None):
        """The layout of ``model`` (default: the config's model, built)."""
        model = model or build(config.model, data.input_shape, data.num_classes, seed=config.seed)
        layers = prunable_layers(model)
        config.check_layers(layers)
        return cls({name: layer_kind(layer) for name, layer in layers.items()},
                   {name: int(np.prod(layer.kernel.shape)) for name, layer in layers.items()})


def prune_masks(config, scores, masks, level, layout):
    """The masks of ``level`` from the scores and masks of level - 1, by ``config.pruning``."""
    if config.strategy == "global":
        return prune_global_level(scores, masks, config.global_rate, level, config.ignored)
    return prune_level(scores, masks, config.rates(layout.kinds), level)


def planned_density(config, layout, level):
    """Fraction of all prunable weights that ``level`` keeps (the closed form)."""
    sizes = layout.sizes
    if config.strategy == "global":
        ignored = sum(n for name, n in sizes.items() if name in config.ignored)
        kept = keep_count(sum(sizes.values()) - ignored, config.global_rate, level) + ignored
    else:
        rates = config.rates(layout.kinds)
        kept = sum(keep_count(n, rates[name], level) for name, n in sizes.items())
    return kept / sum(sizes.values())


def level_zero_jobs(config, data):
    """Level 0: the dense network from its seeded initial weights."""
    model = build(config.model, data.input_shape, data.num_classes, seed=config.seed)
    return [Job(config, Path("."), M.get_weights(model), M.get_masks(model))]


def level_jobs(config, trial_dir, level, layout):
    """Level L >= 1: prune level L-1's network, apply the actions (and the control's)."""
    level0 = paths.level(trial_dir, 0)
    reset = store.load_arrays(paths.weights_rewind(level0) if config.rewind_iteration
                              else paths.weights_init(level0))
    previous = paths.level(trial_dir, level - 1)
    saved_masks = store.load_arrays(paths.masks(previous))
    if set(saved_masks) != set(layout.kinds):
        raise SupermaskError(f"{paths.masks(previous)} holds masks for {sorted(saved_masks)}, but the model "
                             f"{config.model} has the prunable layers {sorted(layout.kinds)}. Was the model "
                             "changed since this trial started? Use another --root for the new model.")
    old_masks = {name: saved_masks[name] for name in layout.kinds}  # in model order
    final = M.kernels(store.load_arrays(paths.weights_final(previous)), old_masks)
    reset_kernels = M.kernels(reset, old_masks)
    rng = np.random.default_rng([config.seed, level, 0])
    scores = compute_scores(config.criterion, reset_kernels, final, rng, masks=old_masks)
    masks = prune_masks(config, scores, old_masks, level, layout)
    runs = [(Path("."), config.mask1, rng)]
    if config.control:
        runs.append((Path(paths.control(".")), "random_reinit", np.random.default_rng([config.seed, level, 1])))
    jobs = []
    for folder, mask1, action_rng in runs:
        state = apply_actions(mask1, config.mask0, reset_kernels, final, masks, action_rng)
        jobs.append(Job(config, folder, _with_kernels(reset, state.weights), state.masks, state.freeze_pruned))
    return jobs


def train_jobs(jobs, data, level, verbose=1, engine=None):
    """Train every job of a level together (``train_many``); returns (results, models)."""
    keras.backend.clear_session()
    models = []
    for job in jobs:
        model = build(job.config.model, data.input_shape, data.num_classes, seed=job.config.seed,
                      freeze_pruned=job.freeze_pruned)
        M.set_weights(model, job.start)
        M.set_masks(model, job.masks)
        models.append(model)
    config = jobs[0].config
    rewind = config.rewind_iteration
    iterations = config.num_iterations(len(data.x_train))
    for model in models:
        compile_model(model, recipe_optimizer(config, iterations, start_iteration=rewind if level else 0))
    results = train_many(models, data, iterations=iterations, weight_decay=config.weight_decay or 0.0,
                         augment=bool(config.augment),
                         batch_size=config.resolved_batch_size(), seeds=[job.config.seed for job in jobs],
                         eval_every=config.eval_every,
                         # Level 0 starts at iteration 0 (and snapshots the rewind point);
                         # later levels start at the rewind point.
                         snapshot_iterations=(rewind,) if rewind and level == 0 else (),
                         start_iteration=rewind if level else 0, verbose=verbose, engine=engine)
    return results, models


def _save_run(folder, start, model, masks, result, level, criterion):
    write_run_files(folder, model, weights_init=start, masks=masks, metrics={
        "level": level, "backend": backend.name(), "seconds": result.seconds,
        "density": density(masks), "overall_density": overall_density(masks),
        "summary": summarize(result.history, criterion), "history": result.history,
    })


def _with_kernels(weights, kernels):
    """``weights`` ({"layer/var": array}) with each layer's kernel replaced."""
    out = dict(weights)
    out.update({f"{layer}/kernel": k for layer, k in kernels.items()})
    return out


def format_table(rows, criterion="val_loss"):
    """The summary rows as an aligned text table, read at the early-stopping iteration of
    ``criterion`` (``supermask.early_stop``)."""
    def pct(x):
        return "   -  " if x is None else f"{100 * x:6.2f}"

    def its(x):
        return f"{'-' if x is None else x:>7}"

    lines = [f"early stop: {early_stop.DESCRIPTIONS[criterion]}",
             " level  % left   val@es  test@es  es iter | control: val@es  test@es  es iter"]
    for r in rows:
        lines.append(f" {r['level']:>5}  {r['percent_remaining']:6.2f}   {pct(r['val_accuracy_at_early_stop'])}   "
                     f"{pct(r['test_accuracy_at_early_stop'])}  {its(r['early_stop_iteration'])} |          "
                     f"{pct(r['control_val_accuracy_at_early_stop'])}   "
                     f"{pct(r['control_test_accuracy_at_early_stop'])}  {its(r['control_early_stop_iteration'])}")
    return "\n".join(lines)


def run_trial(config, data, trial_dir, verbose=1, redo_level=None, engine=None):
    """Run (or finish) every level of one trial; return its summary rows (see ``run_trials``)."""
    return run_trials({config.seed: (config, trial_dir)}, data, verbose, redo_level, engine)[config.seed]


def run_trials(trials, data, verbose=1, redo_level=None, engine=None, layout=None):
    """Run (or finish) every level of several trials, level by level; {key: summary rows}.

    ``trials``: ``{key: (config, trial folder)}``, keyed by seed (``run``) or by
    "<experiment>/trial_<seed>" (``run_many``); configs equal in ``SHARED_FIELDS``.
    At each level the networks of every trial still missing it, tickets and random-reinit
    controls (K = 2 per trial), train together in one ``train_many`` call; each trial's
    level folder is then written as one unit. Holds every trial's lock throughout
    (``LockedError`` if another process has one). ``redo_level``: first delete that level
    and every later one. A finished level whose files are missing or corrupt stops the
    run with a message saying which level folder to delete.
    """
    with contextlib.ExitStack() as stack:
        for config, trial_dir in trials.values():
            Path(trial_dir).mkdir(parents=True, exist_ok=True)
            stack.enter_context(store.exclusive_lock(paths.lock(trial_dir), f"Trial {trial_dir}"))
        for config, trial_dir in trials.values():
            store.remove_stale_temporaries(trial_dir)
            if redo_level is not None:
                remove_levels(trial_dir, redo_level, verbose)
        try:
            return _run_levels(trials, data, verbose, engine, layout)
        except store.CorruptFileError as exc:
            raise _damaged(exc) from None


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


def _damaged(exc):
    """The error for a missing or corrupt file in a finished level: which folder to delete."""
    level_dir = next((p for p in [exc.path, *exc.path.parents]
                      if p.name.startswith("level_") and p.parent.name.startswith("trial_")), None)
    if level_dir is None:
        return exc
    level = level_dir.name.split("_")[1]
    return SupermaskError(f"{exc} The finished level folder {level_dir} is damaged: rerun with "
                          f"--redo-level {level} (redoes level {level} and every later one), or delete "
                          f"{level_dir} and every later level folder and rerun with --resume.")


def _run_levels(trials, data, verbose, engine, layout=None):
    config = next(iter(trials.values()))[0]
    iterations = config.num_iterations(len(data.x_train))
    if config.rewind_iteration >= iterations:
        raise ConfigError(f"rewind_iteration ({config.rewind_iteration}) must be below the number of "
                          f"training iterations ({iterations}).")
    for _, trial_dir in trials.values():
        level0 = paths.level(trial_dir, 0)
        if level0.is_dir():
            trained_on = read_metrics(level0).get("backend")
            if trained_on != backend.name():
                raise ConfigError(f"{trial_dir} was trained with KERAS_BACKEND={trained_on}; resume it with "
                                  f"that backend, or choose another --root for {backend.name()}.")
    layout = layout or Layout.of(config, data)
    for level in range(config.levels + 1):
        todo = {seed: (c, t) for seed, (c, t) in trials.items() if not paths.level(t, level).is_dir()}
        if not todo:
            if verbose:
                print(f"Level {level}: already finished, skipping")
            continue
        jobs = {seed: level_zero_jobs(c, data) if level == 0 else level_jobs(c, t, level, layout)
                for seed, (c, t) in todo.items()}
        flat = [job for seed_jobs in jobs.values() for job in seed_jobs]
        if verbose:
            kept = 100 * planned_density(config, layout, level)
            count = f"{len(flat)} networks trained together" if len(flat) > 1 else "1 network"
            print(f"Level {level}/{config.levels}: {kept:.1f}% of weights remaining ({iterations} iterations, "
                  f"{count}: {_describe(jobs)}; backend {backend.name()})")
        results, models = train_jobs(flat, data, level, verbose, engine)
        done = iter(zip(flat, results, models))
        for seed, seed_jobs in jobs.items():
            with store.atomic_dir(paths.level(todo[seed][1], level)) as tmp:
                for job, result, model in (next(done) for _ in seed_jobs):
                    _save_run(tmp / job.folder, job.start, model, job.masks, result, level, job.config.early_stop)
                    if level == 0 and config.rewind_iteration:
                        store.save_arrays(paths.weights_rewind(tmp), result.snapshots[config.rewind_iteration])
    rows = {}
    for seed, (c, trial_dir) in trials.items():
        rows[seed] = trial_rows(trial_dir, c.levels)
        store.write_csv(paths.summary(trial_dir), rows[seed])
    return rows


def _describe(jobs):
    """"trial 0 (ticket, control), trial 1 (...)" for the progress line."""
    def name(key):
        return f"trial {key}" if isinstance(key, int) else key

    return ", ".join(f"{name(key)} ({', '.join(j.folder.name or 'ticket' for j in js)})" for key, js in jobs.items())


def run(config=None, root="runs/lottery", trials=1, data_dir=None, resume=False, verbose=1, redo_level=None,
        engine=None, *, model=None, data=None, **hparams):
    """Run ``trials`` trials (seeds ``config.seed`` ...); return {seed: summary rows}.

    ``config``: a ``LotteryConfig``; or leave it out and give its fields as keyword
    arguments (``levels=3, iterations=2000, pruning="global"``), which also override a
    given config. ``model``: a built-in name, "package.module:function", or a function
    ``(input_shape=, num_classes=, [seed=]) -> keras.Model`` (plain or masked; see
    ``models.build``). ``data``: a ``supermask.data.Dataset`` or your arrays,
    ``((x, y), (x_test, y_test))`` (see ``data.as_dataset``); default: the config's
    dataset, loaded from ``data_dir``.

    The experiment folder is ``root/<hash of the resolved config but seed and levels>``;
    its ``hparams.json`` records every resolved value. ``resume`` continues finished
    levels; ``redo_level`` (implies ``resume``) reruns that level and every later one.
    At the end it writes the experiment's ``summary.csv`` (mean ± std over every trial in
    its folder, ``supermask.results``) and, with several trials, prints that table.

    Example (your own Keras model and arrays, 3 levels of global pruning)::

        rows = lottery.run(model=build, data=((x, y), (x_test, y_test)), levels=3,
                           iterations=1000, pruning="global", root="runs/mine")
    """
    config = config_for(LotteryConfig, config, model, **hparams)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be an integer >= 1. Received: trials={trials!r}")
    if config.seed + trials - 1 > MAX_SEED:
        raise ConfigError(f"The trial seeds {config.seed} .. {config.seed + trials - 1} must stay <= {MAX_SEED} "
                          "(2**32 - 1); lower --seed or --trials.")
    if redo_level is not None:
        if isinstance(redo_level, bool) or not isinstance(redo_level, int) or not 0 <= redo_level <= config.levels:
            raise ConfigError(f"redo_level must be an integer in [0, levels={config.levels}]. "
                              f"Received: redo_level={redo_level!r}")
        resume = True
    store.check_output_dir(root, "the experiments root (--root)")
    data, config = load_data(config, data, data_dir)
    config = config.resolve(len(data.x_train))
    model = build(config.model, data.input_shape, data.num_classes, seed=config.seed)
    config = identity.identify(config, model, data)
    layout = Layout.of(config, data, model)  # the layers named in the config exist
    seeds = [config.seed + t for t in range(trials)]
    experiment, _ = _prepare(config, root, seeds, resume, verbose)
    trials = {seed: (dataclasses.replace(config, seed=seed), paths.trial(experiment, seed)) for seed in seeds}
    results = run_trials(trials, data, verbose, redo_level=redo_level, engine=engine, layout=layout)
    # The experiment as a whole: every trial in its folder, this run's and earlier ones.
    everything = load_experiment(experiment)
    summary = write_experiment_summary(everything)
    if verbose:
        for seed, rows in results.items():
            print(f"\nTrial {seed} ({paths.summary(trials[seed][1])}):\n{format_table(rows, config.early_stop)}\n")
        if len(everything.trials) > 1:
            seeds = ", ".join(map(str, everything.seeds))
            print(f"Mean ± std over {len(everything.trials)} trials (seeds {seeds}; {summary}):\n"
                  f"{format_aggregate(everything.summary, everything.early_stop)}\n")
        print(f"Report with figures: python -m supermask.report {experiment}")
    return results


def _prepare(config, root, seeds, resume, verbose):
    """The experiment folder of the resolved ``config`` with its hparams.json written;
    ConfigError if some of ``seeds`` have finished levels and not ``resume``."""
    experiment = paths.experiment(root, config.experiment_hash())
    started = [s for s in seeds if paths.level(paths.trial(experiment, s), 0).is_dir()]
    if started and not resume:
        raise ConfigError(f"Experiment {experiment} already has finished levels for seeds {started}. "
                          "Pass --resume to continue it, or choose another --root.")
    if paths.hparams(experiment).is_file() and any(experiment.glob("trial_*/level_0")):
        identity.check_same(store.read_json(paths.hparams(experiment)), config, f"Experiment {experiment}")
    hparams = {k: v for k, v in to_dict(config).items() if k not in ("seed", "levels")}
    store.write_json(paths.hparams(experiment), hparams)
    if verbose:
        print(f"Experiment {experiment}")
        if resume and not started:
            print("Nothing to resume yet: no level of this experiment has finished. Starting it.")
    return experiment, started


# What every network of one train_many call shares: the architecture and the budget. Experiments
# may differ in anything else (criterion, Mask-1 / Mask-0 actions, pruning rates, control, seed).
SHARED_FIELDS = ("model", "dataset", "iterations", "batch_size", "learning_rate", "eval_every", "validation_size",
                 "levels", "rewind_iteration")


def run_many(configs, root, data_dir=None, verbose=1, engine=None):
    """Run (or resume) the trial of each config, all of them together level by level: one
    ``train_many`` call per level holds every experiment's networks (K tickets in one program).

    ``configs``: LotteryConfigs equal in ``SHARED_FIELDS``; each is the trial ``config.seed`` of
    the experiment it hashes to under ``root`` (as ``run`` would write it). Finished levels are
    kept. Returns ``{experiment folder: {seed: summary rows}}`` and writes each experiment's
    summary.csv.
    """
    from supermask.data import load_dataset

    if not configs:
        return {}
    first = configs[0]
    for c in configs[1:]:
        differ = [f for f in SHARED_FIELDS if getattr(c, f) != getattr(first, f)]
        if differ:
            raise ConfigError(f"Experiments run together must share {', '.join(SHARED_FIELDS)}; these differ in "
                              f"{', '.join(differ)}. Run them separately.")
    store.check_output_dir(root, "the experiments root (--root)")
    data = load_dataset(first.dataset, data_dir=data_dir, validation_size=first.validation_size)
    # One architecture and dataset for all (SHARED_FIELDS): fingerprinted once.
    probe = build(first.model, data.input_shape, data.num_classes, seed=first.seed)
    trials = {}
    for c in configs:
        c = identity.identify(c.resolve(len(data.x_train)), probe, data)
        experiment, _ = _prepare(c, root, [c.seed], True, 0)
        key = f"{experiment.name}/trial_{c.seed}"
        if key in trials:
            raise ConfigError(f"Trial {key} is given twice; give each (experiment, seed) once.")
        trials[key] = (c, paths.trial(experiment, c.seed))
    rows = run_trials(trials, data, verbose, engine=engine)
    out = {}
    for key, (c, trial_dir) in trials.items():
        out.setdefault(trial_dir.parent, {})[c.seed] = rows[key]
    for experiment in out:
        write_experiment_summary(load_experiment(experiment))
    return out


def build_parser():
    from supermask.cli import ArgumentParser, add_config_arguments, add_run_arguments

    parser = ArgumentParser(
        prog="python -m supermask.lottery",
        description="Iterative magnitude pruning with resets to init (or late rewinding), any mask "
                    "criterion and Mask-1/Mask-0 action, and the random-reinit control of each level. "
                    "The backend is chosen by KERAS_BACKEND.")
    add_config_arguments(parser, LotteryConfig)
    parser.add_argument("--trials", type=int, default=1, help="number of trials: seeds SEED, SEED+1, ... (default 1)")
    parser.add_argument("--root", default="runs/lottery", help="experiments folder (default runs/lottery)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    parser.add_argument("--redo-level", type=int, default=None, metavar="L",
                        help="delete level L and every later level of each trial, then run them again "
                             "(implies --resume); e.g. after a level's files were damaged")
    add_run_arguments(parser)
    return parser


def main(argv=None):
    from supermask.cli import config_from_args

    args = build_parser().parse_args(argv)
    config = config_from_args(LotteryConfig, args)
    return run(config, args.root, trials=args.trials, data_dir=args.data_dir, resume=args.resume,
               verbose=0 if args.quiet else 1, redo_level=args.redo_level, engine=args.engine)


if __name__ == "__main__":
    from supermask.cli import run_main

    run_main(main)
