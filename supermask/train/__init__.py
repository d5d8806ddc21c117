"""Training: the one seam every run goes through, and one dense run (``python -m supermask.train``,
its command line in ``supermask/train/__main__.py``).

``train_model`` trains a compiled model for a number of iterations on a fixed,
seeded stream of mini-batches, records metrics every ``eval_every`` iterations and can
snapshot the weights at chosen iterations (for late rewinding); ``supermask.lottery``
and the supermask trainer go through it (or through ``train_many``, K models at once).
Inside, ``supermask.engine`` runs each chunk between record points as one compiled
program (``engine="compiled"``, the default) or with Keras ``fit`` (``engine="fit"``).

Example::

    KERAS_BACKEND=jax python -m supermask.train --model fc --dataset mnist --epochs 2 \\
        --data-dir ../shared/data/mnist --out runs/fc
"""

import keras

from supermask import backend, early_stop, identity, recipes
from supermask.engine import EVAL_BATCH_SIZE, TrainResult, batch_order, train_many  # noqa: F401 (re-exported)
from supermask.engine.callbacks import Network, check_tensorboard, for_networks
from supermask.masks import get_masks, get_weights
from supermask.models import build
from supermask.optimizers import compile_model, make_optimizer, recipe_optimizer  # noqa: F401 (re-exported)
from supermask.results import percent
from supermask.runs import check_output, claim_output, load_data, metrics_of, output_folder, save_run, settings_for
from supermask.runs import settings_for as config_for
from supermask.settings import TrainConfig, config_hash, to_dict

# The training seam's names, importable from here as before (``config_for`` / ``load_data``: the Python
# API's inputs, ``supermask.runs.settings_for`` / ``runs.load_data``).
__all__ = ["EVAL_BATCH_SIZE", "TrainResult", "batch_order", "compile_model", "config_for", "load_data",
           "make_optimizer", "recipe_optimizer", "run", "summarize", "train_many", "train_model"]

def train_model(model, data, *, iterations, batch_size, seed=0, eval_every=100,
                snapshot_iterations=(), start_iteration=0, verbose=1, engine=None, weight_decay=0.0, augment=False,
                callbacks=None):
    """Train a compiled ``model`` on ``data`` (a ``supermask.data.Dataset``).

    Args:
        iterations: number of optimiser steps.
        batch_size: examples per step.
        seed: fixes the order of the mini-batches (``batch_order``).
        eval_every: record metrics every this many iterations (and at 0 and the end).
        snapshot_iterations: iterations at which to copy the weights (0 allowed).
        start_iteration: resume the schedule here (late rewinding): the model is taken
            to be at this iteration, and trains on the batches from here to ``iterations``.
        verbose: progress output (a bar on a terminal, a line per record elsewhere); 0 is silent.
        engine: "compiled" (default: one compiled program per chunk, see
            ``supermask.engine``) or "fit" (the reference: Keras ``fit`` per chunk).
        weight_decay, augment: see ``supermask.engine.train_many``.
        callbacks: a list of ``keras.callbacks.Callback``, called at the record points as
            ``supermask.engine.callbacks`` describes (``on_epoch_end(index, logs)`` with ``loss``,
            ``accuracy``, ``val_*``, ``test_*``, ``iteration``; ``model.stop_training`` stops).

    Returns:
        A ``TrainResult``. Raises ``TrainingError`` if the loss becomes NaN or infinite.
    """
    return train_many([model], data, iterations=iterations, batch_size=batch_size, seeds=[seed],
                      eval_every=eval_every, snapshot_iterations=snapshot_iterations,
                      start_iteration=start_iteration, verbose=verbose, engine=engine, weight_decay=weight_decay,
                      augment=augment, callbacks=callbacks)[0]


def summarize(history, criterion="val_loss"):
    """The run's summary at its early-stopping iteration (``supermask.early_stop.summarize``):
    by default the iteration of minimum validation loss, as Frankle & Carbin 2019 (App. C)."""
    return early_stop.summarize(history, criterion)


def run(config=None, data_dir=None, out=None, verbose=1, overwrite=False, out_root=None, engine=None, *,
        model=None, data=None, callbacks=None, tensorboard=None, **hparams):
    """Train ``config`` densely; returns the metrics dict.

    ``config``, ``model``, ``data`` and keyword hyperparameters as in
    ``supermask.lottery.run`` (a ``TrainConfig`` here). Results go to the folder ``out``,
    else ``out_root/<hash of the resolved config>``, else nowhere. An existing non-empty
    folder is refused unless ``overwrite`` (then it is replaced whole once the new run is
    complete). ``hparams.json`` holds the resolved config: every default the run used,
    spelled out. ``engine``: see ``train_model``.

    ``callbacks``: Keras callbacks called at each record point (``train_model``): a list, or a
    function ``network -> list`` (a ``supermask.engine.callbacks.Network``: ``label``, ``name``
    (the config hash), ``seed``). ``tensorboard``: a folder to write TensorBoard scalars to,
    ``<tensorboard>/<config hash>`` (``train/loss``, ``val/accuracy``, ... at each record point,
    x = iteration); off by default, and not part of the config or its hash.
    """
    config = settings_for(TrainConfig, config, model, **hparams)
    tensorboard = check_tensorboard(tensorboard)
    check_output(out, out_root, overwrite)
    data, config = load_data(config, data, data_dir)
    config = recipes.resolve(config, data)
    keras.utils.set_random_seed(config.seed)
    model = build(config.model, data.input_shape, data.num_classes, seed=config.seed)
    config = identity.identify(config, model, data)
    out = output_folder(config, out, out_root)
    with claim_output(out, overwrite):
        compile_model(model, recipe_optimizer(config, config.iterations))
        if verbose:
            print(f"Training {config.model} on {config.dataset} for {config.iterations} iterations "
                  f"(batch {config.batch_size}, backend {backend.name()})")
        init = get_weights(model)
        network = Network("dense", config_hash(config), seed=config.seed, role="dense")
        result = train_model(model, data, iterations=config.iterations, batch_size=config.batch_size,
                             seed=config.seed, eval_every=config.eval_every, verbose=verbose, engine=engine,
                             weight_decay=config.weight_decay or 0.0, augment=bool(config.augment),
                             callbacks=for_networks(callbacks, tensorboard, [network])[0])
        metrics = metrics_of(result, config.early_stop, config_hash=config_hash(config), iterations=config.iterations)
        if out is not None:
            save_run(out, model, overwrite, hparams=to_dict(config), metrics=metrics, weights_init=init,
                     masks=get_masks(model))
    if verbose:
        s = metrics["summary"]
        print(f"Done in {result.seconds:.1f} s: final test accuracy {percent(s['final_test_accuracy'])}; "
              f"early stop ({early_stop.SHORT[s['early_stop']]}) at iteration {s['early_stop_iteration']}: "
              f"test accuracy {percent(s['test_accuracy_at_early_stop'])}"
              + (f"; results in {out}" if out else ""))
    return metrics
