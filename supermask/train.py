"""Training: the one seam every run goes through, and ``python -m supermask.train``.

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

import contextlib
import dataclasses
from pathlib import Path

import keras

from supermask import backend, early_stop, identity, paths, store
from supermask.config import TrainConfig, config_hash, to_dict
from supermask.engine import TrainResult, batch_order, train_many  # noqa: F401 (re-exported)
from supermask.engine.driver import EVAL_BATCH_SIZE
from supermask.errors import ConfigError


OPTIMIZERS = ("adam", "sgd")


def make_optimizer(learning_rate, name="adam", momentum=0.0, cosine_steps=None):
    """An optimiser; by default the lottery papers' Adam with Keras's defaults otherwise.

    Args:
        learning_rate: the (initial) learning rate.
        name: ``"adam"`` or ``"sgd"`` (SGD with ``momentum``; Keras's momentum update
            equals TF1 ``MomentumOptimizer`` and PyTorch ``SGD`` for a constant rate).
        momentum: SGD momentum (Zhou et al.'s supermasks and Ramanujan et al.: 0.9).
        cosine_steps: if set, the rate follows a cosine decay to 0 over this many
            iterations (Ramanujan et al.'s ``cosine_lr``, per step instead of per epoch).
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: optimizer={name!r}")
    if cosine_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=int(cosine_steps))
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def recipe_optimizer(config, iterations, start_iteration=0):
    """The optimiser of a resolved ``TrainConfig`` (or ``LotteryConfig``): Adam or SGD with momentum,
    at a constant rate or on a ``supermask.schedules.Schedule`` (step / cosine, warm-up) whose
    iteration 0 is the first update; ``start_iteration``: a level starting at a late-rewinding
    point continues the schedule from there."""
    from supermask.schedules import Schedule

    rate = config.resolved_learning_rate()
    kind, warmup = config.lr_schedule or "constant", config.warmup or 0
    if kind != "constant" or warmup:
        rate = Schedule(rate, kind, milestones=config.milestones or (), gamma=config.gamma or 0.1, warmup=warmup,
                        total=iterations, offset=start_iteration)
    return make_optimizer(rate, name=config.optimizer or "adam", momentum=config.momentum or 0.0)


def compile_model(model, optimizer):
    """Compile for training with a cross-entropy loss on logits and accuracy."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=backend.jit_compile(),
        steps_per_execution=backend.steps_per_execution(),
    )


def train_model(model, data, *, iterations, batch_size, seed=0, eval_every=100,
                snapshot_iterations=(), start_iteration=0, verbose=1, engine=None, weight_decay=0.0, augment=False):
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

    Returns:
        A ``TrainResult``. Raises ``TrainingError`` if the loss becomes NaN or infinite.
    """
    return train_many([model], data, iterations=iterations, batch_size=batch_size, seeds=[seed],
                      eval_every=eval_every, snapshot_iterations=snapshot_iterations,
                      start_iteration=start_iteration, verbose=verbose, engine=engine, weight_decay=weight_decay,
                      augment=augment)[0]


def summarize(history, criterion="val_loss"):
    """The run's summary at its early-stopping iteration (``supermask.early_stop.summarize``):
    by default the iteration of minimum validation loss, as Frankle & Carbin 2019 (App. C)."""
    return early_stop.summarize(history, criterion)


def check_output(out=None, out_root=None, overwrite=False):
    """Fail before any work if the run folder ``out`` (or a folder under ``out_root``) cannot
    be written, or ``out`` holds an earlier run and ``overwrite`` is False."""
    if out is not None:
        store.check_output_dir(out, "the output folder", overwrite=overwrite)
    elif out_root is not None:
        store.check_output_dir(out_root, "the runs folder")


def output_folder(config, out=None, out_root=None):
    """Where a run of the resolved ``config`` writes: ``out``, else ``out_root/<hash>``, else None."""
    if out is not None:
        return Path(out)
    return Path(out_root) / config_hash(config) if out_root is not None else None


@contextlib.contextmanager
def claim_output(out, overwrite=False):
    """Hold the run folder ``out`` for the block: one process at a time writes it.

    Takes the lock ``.<name>.lock`` beside it (released by the kernel even on kill -9),
    checks again that it may be written, and deletes temporaries a killed earlier run
    left for this folder. ``out=None`` (no output) holds nothing.
    """
    if out is None:
        yield
        return
    with store.exclusive_lock(store.lock_path(out), f"The output folder {out}"):
        store.check_output_dir(out, "the output folder", overwrite=overwrite)
        store.remove_stale_temporaries(Path(out).parent, Path(out).name)
        yield


def write_run_files(folder, model, *, weights_init, masks, metrics, hparams=None):
    """The files of one trained network in ``folder``: its start weights, final weights (from
    ``model``), masks, ``model.keras``, metrics and (if given) hparams, each atomically."""
    from supermask.masks import get_weights

    if hparams is not None:
        store.write_json(paths.hparams(folder), hparams)
    store.save_arrays(paths.weights_init(folder), weights_init)
    store.save_arrays(paths.weights_final(folder), get_weights(model))
    store.save_arrays(paths.masks(folder), masks)
    store.save_model(paths.model(folder), model)
    store.write_json(paths.metrics(folder), metrics)


def save_run(out, model, overwrite=False, **files):
    """Write a run folder as one unit (``write_run_files`` under a temporary name, then swapped
    in): a run killed while saving leaves the previous folder (or none), never a mix of both."""
    with store.atomic_dir(out, replace=overwrite) as tmp:
        write_run_files(tmp, model, **files)


def config_for(config_cls, config=None, model=None, **hparams):
    """The config of a run from the Python API: ``config`` (default: ``config_cls()``) with the
    fields given as keyword arguments replaced, and ``model`` (a name or a builder function,
    ``models.model_label``) as its model. ConfigError for a field ``config_cls`` lacks."""
    from supermask.models import model_label

    if config is not None and not isinstance(config, config_cls):
        raise ConfigError(f"config must be a {config_cls.__name__}. Received: {type(config).__name__}")
    names = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(hparams) - set(names))
    if unknown:
        raise ConfigError(f"Unknown hyperparameter(s) {', '.join(unknown)} for {config_cls.__name__}. "
                          f"Valid: {', '.join(names)}.")
    if model is not None:
        hparams["model"] = model_label(model)
    if config is None:
        return config_cls(**hparams)
    return dataclasses.replace(config, **hparams) if hparams else config


def load_data(config, data=None, data_dir=None):
    """``(Dataset, config)`` for a run: ``data`` (a ``Dataset`` or arrays, ``data.as_dataset``) with
    the config naming it (dataset label, validation size), else the config's dataset loaded."""
    from supermask.data import as_dataset, load_dataset

    if data is None:
        return load_dataset(config.dataset, data_dir=data_dir, validation_size=config.validation_size), config
    data = as_dataset(data, config.validation_size)
    return data, dataclasses.replace(config, dataset=data.name, validation_size=len(data.x_val))


def run(config=None, data_dir=None, out=None, verbose=1, overwrite=False, out_root=None, engine=None, *,
        model=None, data=None, **hparams):
    """Train ``config`` densely; returns the metrics dict.

    ``config``, ``model``, ``data`` and keyword hyperparameters as in
    ``supermask.lottery.run`` (a ``TrainConfig`` here). Results go to the folder ``out``,
    else ``out_root/<hash of the resolved config>``, else nowhere. An existing non-empty
    folder is refused unless ``overwrite`` (then it is replaced whole once the new run is
    complete). ``hparams.json`` holds the resolved config: every default the run used,
    spelled out. ``engine``: see ``train_model``.
    """
    from supermask.cli import percent
    from supermask.masks import get_masks, get_weights
    from supermask.models import build

    config = config_for(TrainConfig, config, model, **hparams)
    check_output(out, out_root, overwrite)
    data, config = load_data(config, data, data_dir)
    config = config.resolve(len(data.x_train))
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
        result = train_model(model, data, iterations=config.iterations, batch_size=config.batch_size,
                             seed=config.seed, eval_every=config.eval_every, verbose=verbose, engine=engine,
                             weight_decay=config.weight_decay or 0.0, augment=bool(config.augment))
        metrics = {
            "backend": backend.name(),
            "config_hash": config_hash(config),
            "iterations": config.iterations,
            "seconds": result.seconds,
            "summary": summarize(result.history, config.early_stop),
            "history": result.history,
        }
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


def build_parser():
    from supermask.cli import ArgumentParser, add_config_arguments, add_run_arguments

    parser = ArgumentParser(
        prog="python -m supermask.train",
        description="Train a network densely on MNIST, Fashion-MNIST or CIFAR-10 and save its "
                    "initial weights, final weights and metrics. The backend is chosen by KERAS_BACKEND.",
    )
    add_config_arguments(parser, TrainConfig)
    add_run_arguments(parser, out_default="runs/train/<config hash>")
    return parser


def main(argv=None):
    from supermask.cli import run_config_command

    return run_config_command(argv, build_parser(), TrainConfig, run, "runs/train")


if __name__ == "__main__":
    from supermask.cli import run_main

    run_main(main)
