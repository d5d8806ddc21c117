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
Level 0 depends only on the level-0 identity (``trunk.level0_identity``: every field but the
seed and those that shape later levels) and the seed: trials that share both train it once,
and a trial copies (hard links) a finished level 0 of another experiment under the root, or of
the one named by ``--branch-from``, instead of training it (``supermask.lottery.trunk``).

    KERAS_BACKEND=jax python -m supermask.lottery --model fc --dataset mnist --levels 11 \\
        --iterations 5000 --data-dir ../shared/data/mnist --root runs/lottery
"""

import dataclasses
from pathlib import Path

from supermask import backend, identity, paths, recipes, runs, store
from supermask.data import load_dataset
from supermask.engine.callbacks import Network, check_tensorboard, for_networks, write_scalars
from supermask.errors import ConfigError, SupermaskError
from supermask.lottery.levels import Layout, level_jobs, level_zero_jobs, planned_density, save_network, train_jobs
from supermask.lottery.trunk import Trunks, check_branch, copy_level, leaders
from supermask.models import build
from supermask.pruning import density, overall_density
from supermask.results import format_aggregate, format_table, load_experiment, trial_rows, write_experiment_summary
from supermask.seeds import MAX_SEED
from supermask.settings import LotteryConfig


def run_trial(config, data, trial_dir, verbose=1, redo_level=None, engine=None):
    """Run (or finish) every level of one trial; return its summary rows (see ``run_trials``)."""
    return run_trials({config.seed: (config, trial_dir)}, data, verbose, redo_level, engine)[config.seed]


def run_trials(trials, data, verbose=1, redo_level=None, engine=None, layout=None, trunks=None, callbacks=None,
               tensorboard=None):
    """Run (or finish) every level of several trials, level by level; {key: summary rows}.

    ``trials``: ``{key: (config, trial folder)}``, keyed by seed (``run``) or by
    "<experiment>/trial_<seed>" (``run_many``); resolved configs equal in ``SHARED_FIELDS``.
    At each level the networks of every trial still missing it, tickets and random-reinit
    controls (K = 2 per trial), train together in one ``train_many`` call; each trial's
    level folder is then written as one unit. Level 0 is trained once per level-0 identity
    and seed (``trunk.level0_identity``): trials that share it copy it (``trunk.leaders``), and
    a trial whose level 0 ``trunks`` (a ``trunk.Trunks``, default none) holds finished in
    another experiment copies that one instead of training it. Holds every trial's lock
    throughout (``LockedError`` if another process has one). ``redo_level``: first delete
    that level and every later one. A finished level whose files are missing or corrupt
    stops the run with a message saying which level folder to delete. ``callbacks``,
    ``tensorboard``: see ``run``.
    """
    # Resolving is idempotent: configs from ``run`` / ``run_many`` stay as they are, others get every value.
    trials = {key: (recipes.resolve(config, data), trial_dir) for key, (config, trial_dir) in trials.items()}
    with runs.lock_trials([trial_dir for _, trial_dir in trials.values()], redo_level, verbose):
        try:
            return _run_levels(trials, data, verbose, engine, layout, trunks or Trunks(), callbacks, tensorboard)
        except store.CorruptFileError as exc:
            raise runs.damaged(exc) from None


def _run_levels(trials, data, verbose, engine, layout, trunks, callbacks=None, tensorboard=None):
    config = next(iter(trials.values()))[0]
    iterations = recipes.iterations(config, data)
    if config.rewind_iteration >= iterations:
        raise ConfigError(f"rewind_iteration ({config.rewind_iteration}) must be below the number of "
                          f"training iterations ({iterations}).")
    for _, trial_dir in trials.values():
        runs.check_backend(trial_dir, backend.name())
    layout = layout or Layout.of(config, data)
    for level in range(config.levels + 1):
        todo = {seed: (c, t) for seed, (c, t) in trials.items() if not paths.level(t, level).is_dir()}
        if not todo:
            if verbose:
                print(f"Level {level}: already finished, skipping")
            continue
        followers = {}
        if level == 0:
            todo = {key: (c, t) for key, (c, t) in todo.items() if not _branch(key, c, t, trunks, verbose)}
            todo, followers = leaders(todo)
            if not todo:
                continue
        jobs = {seed: level_zero_jobs(c, data) if level == 0 else level_jobs(c, t, level, layout)
                for seed, (c, t) in todo.items()}
        flat = [job for seed_jobs in jobs.values() for job in seed_jobs]
        if verbose:
            kept = 100 * planned_density(config, layout, level)
            count = f"{len(flat)} networks trained together" if len(flat) > 1 else "1 network"
            shared = f"; shared with {len(followers)} more trial(s) of the same level-0 settings" if followers else ""
            print(f"Level {level}/{config.levels}: {kept:.1f}% of weights remaining ({iterations} iterations, "
                  f"{count}: {_describe(jobs)}{shared}; backend {backend.name()})")
        networks = _networks(jobs, todo, level, tensorboard)
        results, models = train_jobs(flat, data, level, verbose, engine, labels=[n.label for n in networks],
                                     callbacks=for_networks(callbacks, tensorboard, networks))
        done = iter(zip(flat, results, models))
        for seed, seed_jobs in jobs.items():
            with store.atomic_dir(paths.level(todo[seed][1], level)) as tmp:
                for job, result, model in (next(done) for _ in seed_jobs):
                    save_network(tmp / job.folder, job.start, model, job.masks, result, level, job.config.early_stop)
                    if level == 0 and config.rewind_iteration:
                        if config.rewind_iteration not in result.snapshots:  # a callback stopped it before
                            raise SupermaskError(f"Level 0 of {_name(seed)} stopped (a callback's stop_training) at "
                                                 f"iteration {result.history[-1]['iteration']}, before the rewind "
                                                 f"iteration {config.rewind_iteration} it must save; stop later, or "
                                                 "rewind to an earlier iteration.")
                        store.save_arrays(paths.weights_rewind(tmp), result.snapshots[config.rewind_iteration])
        for key, leader in followers.items():
            source = paths.level(todo[leader][1], 0)
            why = copy_level(source, paths.level(trials[key][1], 0), trials[key][0].early_stop)
            if why is not None:
                raise SupermaskError(f"Could not copy the level 0 just trained in {source}: {why}")
            if verbose:
                print(f"Level 0 of {_name(key)}: the level 0 of {_name(leader)} (same level-0 settings and seed)")
    rows = {}
    for seed, (c, trial_dir) in trials.items():
        rows[seed] = trial_rows(trial_dir, c.levels)
        store.write_csv(paths.summary(trial_dir), rows[seed])
    return rows


def _networks(jobs, todo, level, tensorboard):
    """The level's networks (``supermask.engine.callbacks.Network``), named
    "<hash>/trial_<seed>/level_<L>[/control]"; with ``tensorboard``, each trial's mask density per
    layer at this level (``density/<layer>``, ``density/overall``, step = level) goes to
    "<tensorboard>/<hash>/trial_<seed>"."""
    networks = []
    for key, seed_jobs in jobs.items():
        trial_dir = todo[key][1]
        trial = Path(trial_dir.parent.name, trial_dir.name)
        if tensorboard is not None:
            masks = seed_jobs[0].masks
            values = {f"density/{k}": v for k, v in density(masks).items()}
            values["density/overall"] = overall_density(masks)
            write_scalars(Path(tensorboard) / trial, level, values)
        for job in seed_jobs:
            role = job.folder.name or "ticket"
            networks.append(Network(f"{_name(key)} {role}",
                                    str(trial / paths.level(".", level).name / job.folder), len(networks),
                                    job.config.seed, level, role))
    return networks


def _name(key):
    return f"trial {key}" if isinstance(key, int) else key


def _describe(jobs):
    """"trial 0 (ticket, control), trial 1 (...)" for the progress line."""
    return ", ".join(f"{_name(key)} ({', '.join(j.folder.name or 'ticket' for j in js)})" for key, js in jobs.items())


def _branch(key, config, trial_dir, trunks, verbose):
    """Copy a finished level 0 that ``trunks`` hold for this trial; whether one was copied."""
    source = trunks.find(config, trial_dir)
    if source is None:
        return False
    why = copy_level(source, paths.level(trial_dir, 0), config.early_stop)
    if verbose:
        print(f"Level 0 of {_name(key)}: " + (f"copied from {source} (a finished experiment with the same level-0 "
                                               "settings), not trained again" if why is None else
                                               f"not copied from {source} ({why}); training it"))
    return why is None


def run(config=None, root="runs/lottery", trials=1, data_dir=None, resume=False, verbose=1, redo_level=None,
        engine=None, *, model=None, data=None, branch_from=None, callbacks=None, tensorboard=None, **hparams):
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
    ``callbacks``: Keras callbacks called at each record point of every network
    (``supermask.train.train_model``): a function ``network -> list`` (a
    ``supermask.engine.callbacks.Network``: ``label`` "trial 0 control", ``name``
    "<hash>/trial_0/level_2/control", ``seed``, ``level``, ``role``), called for each network of
    each level; a plain list only when a level trains one network. ``tensorboard``: a folder
    for TensorBoard scalars, one run per network, ``<tensorboard>/<name>`` (loss and accuracy
    at each record point, x = iteration), and each trial's per-layer density per level in
    ``<tensorboard>/<hash>/trial_<seed>`` (x = level); off by default, not part of the hash.
    At the end it writes the experiment's ``summary.csv`` (mean ± std over every trial in
    its folder, ``supermask.results``) and, with several trials, prints that table.

    A trial's level 0 is copied, not trained, from a finished experiment with the same
    level-0 settings and seed (``trunk.level0_identity``): ``branch_from`` (an experiment
    folder, ``<root>/<hash>``; ConfigError naming the differing fields if its level 0 was
    trained with other settings), else any experiment under ``root``.

    Example (your own Keras model and arrays, 3 levels of global pruning)::

        rows = lottery.run(model=build, data=((x, y), (x_test, y_test)), levels=3,
                           iterations=1000, pruning="global", root="runs/mine")
    """
    config = runs.settings_for(LotteryConfig, config, model, **hparams)
    tensorboard = check_tensorboard(tensorboard)
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
    data, config = runs.load_data(config, data, data_dir)
    config = recipes.resolve(config, data)
    model = build(config.model, data.input_shape, data.num_classes, seed=config.seed)
    config = identity.identify(config, model, data)
    layout = Layout.of(config, data, model)  # the layers named in the config exist
    seeds = [config.seed + t for t in range(trials)]
    if branch_from is not None:
        planned = paths.experiment(root, config.experiment_hash())
        needed = [s for s in seeds if redo_level == 0 or not paths.level(paths.trial(planned, s), 0).is_dir()]
        branch_from = check_branch(branch_from, config, needed) if needed else None
    experiment, _ = runs.prepare_experiment(config, root, seeds, resume, verbose)
    trials = {seed: (dataclasses.replace(config, seed=seed), paths.trial(experiment, seed)) for seed in seeds}
    results = run_trials(trials, data, verbose, redo_level=redo_level, engine=engine, layout=layout,
                         trunks=Trunks.under(root, first=branch_from), callbacks=callbacks, tensorboard=tensorboard)
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
    summary.csv. Trials that share a level-0 identity and seed train level 0 once, and one
    whose level 0 another experiment under ``root`` has finished copies it (``run_trials``).
    """
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
        c = identity.identify(recipes.resolve(c, data), probe, data)
        experiment, _ = runs.prepare_experiment(c, root, [c.seed], True, 0)
        key = f"{experiment.name}/trial_{c.seed}"
        if key in trials:
            raise ConfigError(f"Trial {key} is given twice; give each (experiment, seed) once.")
        trials[key] = (c, paths.trial(experiment, c.seed))
    rows = run_trials(trials, data, verbose, engine=engine, trunks=Trunks.under(root))
    out = {}
    for key, (c, trial_dir) in trials.items():
        out.setdefault(trial_dir.parent, {})[c.seed] = rows[key]
    for experiment in out:
        write_experiment_summary(load_experiment(experiment))
    return out
