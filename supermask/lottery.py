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

import dataclasses
from pathlib import Path

import keras
import numpy as np

from supermask import backend, paths, store
from supermask import masks as M
from supermask.actions import apply_actions
from supermask.config import MAX_SEED, LotteryConfig, to_dict
from supermask.criteria import compute_scores
from supermask.errors import ConfigError, SupermaskError
from supermask.models import build_model, prunable_layers
from supermask.pruning import density, overall_density, ones_like, prune_level
from supermask.train import compile_model, make_optimizer, summarize, train_model


def train_network(config, data, start, masks, freeze_pruned, snapshot_iterations=(), verbose=1):
    """Train one network from ``start`` weights with fixed ``masks``; return (result, model)."""
    keras.backend.clear_session()
    model = build_model(config.model, data.input_shape, data.num_classes, seed=config.seed,
                        freeze_pruned=freeze_pruned)
    M.set_weights(model, start)
    M.set_masks(model, masks)
    compile_model(model, make_optimizer(config.resolved_learning_rate()))
    result = train_model(model, data, iterations=config.num_iterations(len(data.x_train)),
                         batch_size=config.resolved_batch_size(), seed=config.seed,
                         eval_every=config.eval_every, snapshot_iterations=snapshot_iterations,
                         start_iteration=config.rewind_iteration, verbose=verbose)
    return result, model


def _save_run(folder, start, model, masks, result, level):
    store.save_arrays(paths.weights_init(folder), start)
    store.save_arrays(paths.weights_final(folder), M.get_weights(model))
    store.save_arrays(paths.masks(folder), masks)
    store.save_model(paths.model(folder), model)
    store.write_json(paths.metrics(folder), {
        "level": level, "backend": backend.name(), "seconds": result.seconds,
        "density": density(masks), "overall_density": overall_density(masks),
        "summary": summarize(result.history), "history": result.history,
    })


def _with_kernels(weights, kernels):
    """``weights`` ({"layer/var": array}) with each layer's kernel replaced."""
    out = dict(weights)
    out.update({f"{layer}/kernel": k for layer, k in kernels.items()})
    return out


def run_level_zero(config, data, folder, verbose):
    """Train the dense network from its seeded initial weights."""
    keras.backend.clear_session()
    init = M.get_weights(build_model(config.model, data.input_shape, data.num_classes, seed=config.seed))
    masks = ones_like(M.kernels(init))
    rewind = config.rewind_iteration
    # Level 0 always starts at iteration 0; later levels start at the rewind point.
    level0 = dataclasses.replace(config, rewind_iteration=0)
    result, model = train_network(level0, data, init, masks, False,
                                  snapshot_iterations=(rewind,) if rewind else (), verbose=verbose)
    _save_run(folder, init, model, masks, result, 0)
    if rewind:
        store.save_arrays(paths.weights_rewind(folder), result.snapshots[rewind])


def run_level(config, data, trial_dir, level, folder, verbose):
    """Prune level ``level - 1``'s network, apply the actions, retrain (and the control)."""
    level0 = paths.level(trial_dir, 0)
    reset = store.load_arrays(paths.weights_rewind(level0) if config.rewind_iteration
                              else paths.weights_init(level0))
    previous = paths.level(trial_dir, level - 1)
    final = M.kernels(store.load_arrays(paths.weights_final(previous)))
    old_masks = store.load_arrays(paths.masks(previous))
    reset_kernels = M.kernels(reset)
    rng = np.random.default_rng([config.seed, level, 0])
    scores = compute_scores(config.criterion, reset_kernels, final, rng, masks=old_masks)
    masks = prune_level(scores, old_masks, config.rates(old_masks), level)

    runs = [(folder, config.mask1, rng)]
    if config.control:
        runs.append((paths.control(folder), "random_reinit", np.random.default_rng([config.seed, level, 1])))
    for out, mask1, action_rng in runs:
        state = apply_actions(mask1, config.mask0, reset_kernels, final, masks, action_rng)
        start = _with_kernels(reset, state.weights)
        if verbose and out != folder:
            print("  random-reinit control:")
        result, model = train_network(config, data, start, state.masks, state.freeze_pruned, verbose=verbose)
        _save_run(out, start, model, state.masks, result, level)


def summary_rows(trial_dir, levels):
    """One dict per finished level: density, best validation accuracy, test accuracy there..."""
    rows = []
    for level in range(levels + 1):
        folder = paths.level(trial_dir, level)
        if not folder.is_dir():
            break
        metrics = _read_metrics(folder)
        s = metrics["summary"]
        row = {"level": level, "percent_remaining": round(100 * metrics["overall_density"], 2),
               "best_val_accuracy": s["best_val_accuracy"],
               "test_accuracy_at_early_stop": s["test_accuracy_at_early_stop"],
               "early_stop_iteration": s["early_stop_iteration"],
               "final_test_accuracy": s["final_test_accuracy"]}
        control = paths.control(folder)
        c = _read_metrics(control)["summary"] if control.is_dir() else {}
        row["control_best_val_accuracy"] = c.get("best_val_accuracy")
        row["control_test_accuracy_at_early_stop"] = c.get("test_accuracy_at_early_stop")
        row["control_early_stop_iteration"] = c.get("early_stop_iteration")
        rows.append(row)
    return rows


def _read_metrics(folder):
    """``metrics.json`` of a finished run folder; CorruptFileError if it lacks its summary."""
    path = paths.metrics(folder)
    metrics = store.read_json(path)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("summary"), dict) \
            or "overall_density" not in metrics:
        raise store.CorruptFileError(f"{path} is corrupt: it lacks the run's summary.", path)
    return metrics


def format_table(rows):
    """The summary rows as an aligned text table."""
    def pct(x):
        return "   -  " if x is None else f"{100 * x:6.2f}"

    lines = [" level  % left   best val  test@es  es iter | control: val  test@es"]
    for r in rows:
        lines.append(f" {r['level']:>5}  {r['percent_remaining']:6.2f}   {pct(r['best_val_accuracy'])}   "
                     f"{pct(r['test_accuracy_at_early_stop'])}  {r['early_stop_iteration']:>7} |        "
                     f"{pct(r['control_best_val_accuracy'])}   {pct(r['control_test_accuracy_at_early_stop'])}")
    return "\n".join(lines)


def run_trial(config, data, trial_dir, verbose=1, redo_level=None):
    """Run (or finish) every level of one trial; return its summary rows.

    Holds the trial's lock throughout (``LockedError`` if another process has it).
    ``redo_level``: first delete that level and every later one, then run them again.
    A finished level whose files are missing or corrupt stops the run with a message
    saying which level folder to delete.
    """
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    with store.exclusive_lock(paths.lock(trial_dir), f"Trial {trial_dir}"):
        store.remove_stale_temporaries(trial_dir)
        if redo_level is not None:
            remove_levels(trial_dir, redo_level, verbose)
        try:
            return _run_levels(config, data, trial_dir, verbose)
        except store.CorruptFileError as exc:
            raise _damaged(exc, trial_dir) from None


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


def _damaged(exc, trial_dir):
    """The error for a missing or corrupt file in a finished level: which folder to delete."""
    level_dir = next((p for p in [exc.path, *exc.path.parents]
                      if p.parent == trial_dir and p.name.startswith("level_")), None)
    if level_dir is None:
        return exc
    level = level_dir.name.split("_")[1]
    return SupermaskError(f"{exc} The finished level folder {level_dir} is damaged: rerun with "
                          f"--redo-level {level} (redoes level {level} and every later one), or delete "
                          f"{level_dir} and every later level folder and rerun with --resume.")


def _run_levels(config, data, trial_dir, verbose):
    iterations = config.num_iterations(len(data.x_train))
    if config.rewind_iteration >= iterations:
        raise ConfigError(f"rewind_iteration ({config.rewind_iteration}) must be below the number of "
                          f"training iterations ({iterations}).")
    level0 = paths.level(trial_dir, 0)
    if level0.is_dir():
        trained_on = _read_metrics(level0).get("backend")
        if trained_on != backend.name():
            raise ConfigError(f"{trial_dir} was trained with KERAS_BACKEND={trained_on}; resume it with that "
                              f"backend, or choose another --root for {backend.name()}.")
    for level in range(config.levels + 1):
        folder = paths.level(trial_dir, level)
        if folder.is_dir():
            if verbose:
                print(f"Level {level}: already finished, skipping")
            continue
        if verbose:
            kept = 100 * _planned_density(config, data, level)
            print(f"Level {level}/{config.levels}: {kept:.1f}% of weights remaining "
                  f"({iterations} iterations, backend {backend.name()})")
        with store.atomic_dir(folder) as tmp:
            if level == 0:
                run_level_zero(config, data, tmp, verbose)
            else:
                run_level(config, data, trial_dir, level, tmp, verbose)
    rows = summary_rows(trial_dir, config.levels)
    store.write_csv(paths.summary(trial_dir), rows)
    return rows


def _planned_density(config, data, level):
    from supermask.pruning import keep_count

    model = build_model(config.model, data.input_shape, data.num_classes)
    layers = prunable_layers(model)
    sizes = {name: int(np.prod(layer.kernel.shape)) for name, layer in layers.items()}
    rates = config.rates(sizes)
    return sum(keep_count(n, rates[k], level) for k, n in sizes.items()) / sum(sizes.values())


def run(config, root, trials=1, data_dir=None, resume=False, verbose=1, redo_level=None):
    """Run ``trials`` trials (seeds ``config.seed`` ...); return {seed: summary rows}.

    The experiment folder is ``root/<hash of the resolved config but seed and levels>``;
    its ``hparams.json`` records every resolved value. ``resume`` continues finished
    levels; ``redo_level`` (implies ``resume``) reruns that level and every later one.
    """
    from supermask.data import load_dataset

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
    data = load_dataset(config.dataset, data_dir=data_dir, validation_size=config.validation_size)
    config = config.resolve(len(data.x_train))
    experiment = paths.experiment(root, config.experiment_hash())
    seeds = [config.seed + t for t in range(trials)]
    started = [s for s in seeds if paths.level(paths.trial(experiment, s), 0).is_dir()]
    if started and not resume:
        raise ConfigError(f"Experiment {experiment} already has finished levels for seeds {started}. "
                          "Pass --resume to continue it, or choose another --root.")
    hparams = {k: v for k, v in to_dict(config).items() if k not in ("seed", "levels")}
    store.write_json(paths.hparams(experiment), hparams)
    if verbose:
        print(f"Experiment {experiment}")
        if resume and not started:
            print("Nothing to resume yet: no level of this experiment has finished. Starting it.")
    results = {}
    for seed in seeds:
        trial_config = dataclasses.replace(config, seed=seed)
        trial_dir = paths.trial(experiment, seed)
        rows = run_trial(trial_config, data, trial_dir, verbose, redo_level=redo_level)
        results[seed] = rows
        if verbose:
            print(f"\nTrial {seed} ({paths.summary(trial_dir)}):\n{format_table(rows)}\n")
    return results


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
               verbose=0 if args.quiet else 1, redo_level=args.redo_level)


if __name__ == "__main__":
    from supermask.cli import run_main

    run_main(main)
