"""One level of an IMP trial: its networks (jobs), their masks by pruning, their training.

Level 0 trains the dense network from its seeded W0. Level L >= 1 scores level L-1's weights with
the criterion over (reset weights, final weights), prunes to the level's masks (layer-wise or
global, ``supermask.pruning``), applies the Mask-1 / Mask-0 actions, and adds the random-reinit
control; every network of a level trains together in one ``train_many`` call.
"""

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from supermask import paths, recipes, store
from supermask import masks as M
from supermask.actions import apply_actions
from supermask.convert import layer_kind
from supermask.criteria import compute_scores
from supermask.engine import train_many
from supermask.errors import SupermaskError
from supermask.models import build, prunable_layers
from supermask.optimizers import compile_model, recipe_optimizer
from supermask.pruning import density, keep_count, overall_density, prune_global_level, prune_level
from supermask.runs import metrics_of, write_run_files
from supermask.settings import LotteryConfig


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
        recipes.check_layers(config, layers)
        return cls({name: layer_kind(layer) for name, layer in layers.items()},
                   {name: int(np.prod(layer.kernel.shape)) for name, layer in layers.items()})


def prune_masks(config, scores, masks, level, layout):
    """The masks of ``level`` from the scores and masks of level - 1, by ``config.pruning``."""
    if config.pruning == "global":
        return prune_global_level(scores, masks, config.global_rate, level, recipes.ignored_layers(config))
    return prune_level(scores, masks, recipes.layer_rates(config, layout.kinds), level)


def planned_density(config, layout, level):
    """Fraction of all prunable weights that ``level`` keeps (the closed form), for resolved ``config``."""
    sizes = layout.sizes
    if config.pruning == "global":
        ignored = sum(n for name, n in sizes.items() if name in recipes.ignored_layers(config))
        kept = keep_count(sum(sizes.values()) - ignored, config.global_rate, level) + ignored
    else:
        rates = recipes.layer_rates(config, layout.kinds)
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


def train_jobs(jobs, data, level, verbose=1, engine=None, labels=None, callbacks=None):
    """Train every job of a level together (``train_many``, with ``labels`` and ``callbacks``);
    returns (results, models)."""
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
    iterations = recipes.iterations(config, data)
    for model in models:
        compile_model(model, recipe_optimizer(config, iterations, start_iteration=rewind if level else 0))
    results = train_many(models, data, iterations=iterations, weight_decay=config.weight_decay or 0.0,
                         augment=bool(config.augment),
                         batch_size=config.batch_size, seeds=[job.config.seed for job in jobs],
                         eval_every=config.eval_every,
                         # Level 0 starts at iteration 0 (and snapshots the rewind point);
                         # later levels start at the rewind point.
                         snapshot_iterations=(rewind,) if rewind and level == 0 else (),
                         start_iteration=rewind if level else 0, verbose=verbose, engine=engine, labels=labels,
                         callbacks=callbacks)
    return results, models


def save_network(folder, start, model, masks, result, level, criterion):
    metrics = metrics_of(result, criterion, level=level, density=density(masks), overall_density=overall_density(masks))
    write_run_files(folder, model, weights_init=start, masks=masks, metrics=metrics)


def _with_kernels(weights, kernels):
    """``weights`` ({"layer/var": array}) with each layer's kernel replaced."""
    out = dict(weights)
    out.update({f"{layer}/kernel": k for layer, k in kernels.items()})
    return out
