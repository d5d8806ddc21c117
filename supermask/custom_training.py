"""Iterative magnitude pruning around your own training function: ``supermask.imp``.

``imp(model, train_fn, levels=..., validation=(x_val, y_val), test=(x_test, y_test))`` runs the
lottery's loop (Frankle & Carbin 2019) with your training in the middle: level 0 calls
``train_fn(network)`` on a masked copy of ``model`` holding its current weights W0; level L >= 1
scores level L-1's weights with the criterion over (W0, final), prunes (layer-wise or global, the
lottery's counts), applies the Mask-1 / Mask-0 actions to W0 and calls ``train_fn`` again; the
random-reinit control of every level trains the same masks from fresh weights. The levels are the
lottery's own (``lottery.levels.level_jobs``: the same scores, masks, actions and random draws), and
so are the folders: ``<root>/<hash>/hparams.json``, ``trial_<seed>/level_<L>/`` (``weights_init.h5``,
``weights_final.h5``, ``masks.h5``, ``model.keras``, ``metrics.json``, ``control/``), ``summary.csv``
— ``supermask report``, ``supermask.results`` and ``supermask export`` read them as they read the
CLI's. A level folder is written as one unit when its networks are done; a rerun continues from the
last finished level (``resume``); a trial is locked while it runs.

``train_fn(model)`` trains the network it is given in place, by any means: ``model.fit`` on arrays,
a ``tf.data`` pipeline or a torch ``DataLoader``, a custom loop. The network is compiled as your
model was (a fresh optimizer at every level and for every network, as the papers restart it); if
yours was not compiled, ``train_fn`` compiles it. ``keras.utils.set_random_seed(seed)`` is called
before every call, so the ticket and its control see the same data order where your pipeline
draws from Keras's / numpy's seeds. If ``train_fn`` takes a second argument it gets Keras callbacks
to pass on to ``fit(callbacks=...)``: a ``Recorder`` (the validation and test metrics every
``eval_every`` steps, or at each epoch's end, so early stopping is read as the papers read it, at
the iteration of minimum validation loss) and, with ``rewind_iteration=k``, the snapshot of level 0
at step k (late rewinding; later levels then start from it and run ``train_fn`` in full, as your
function defines its length). Without callbacks the network is evaluated once, after training.

The experiment's hash (``settings.ImpSettings``) holds the pruning settings, your model by class,
weights and architecture, ``train_fn`` by name and source, the evaluation data's fingerprint, and
``settings``: pass there whatever else your function reads (epochs, batch size, the training data's
name), so that changing it starts a new experiment rather than joining the old one.
"""

import dataclasses
import hashlib
import inspect
import time
from pathlib import Path

import keras
import numpy as np

from supermask import backend, criteria, identity, paths, runs, store, tickets
from supermask import masks as M
from supermask.callbacks import Recorder, WeightSnapshot, optimizer_step
from supermask.convert import layer_kind, prunable_layers
from supermask.engine.callbacks import LOG_KEYS, TAGS, EventWriter, check_tensorboard, write_scalars
from supermask.engine.driver import duration
from supermask.errors import ConfigError
from supermask.lottery.levels import Job, Layout, level_jobs, planned_density, save_network
from supermask.models import model_label
from supermask.pruning import KIND_RATES, density, layer_roles, overall_density
from supermask.results import format_table, load_experiment, percent, trial_rows, write_experiment_summary
from supermask.settings import canonical_json
from supermask.settings.imp import ImpSettings
from supermask.specs import source_digest

EVAL_BATCH = 1000


def imp(model, train_fn, *, levels, validation=None, test=None, evaluate=None, root="runs/imp", rate=None,
        scope="layerwise", ignore=(), criterion="large_final", mask1="none", mask0="mask", control=True,
        rewind_iteration=0, seed=0, trials=1, settings=None, dataset="arrays", early_stop="val_loss",
        eval_every=None, tensorboard=None, verbose=1):
    """Run (or resume) IMP around ``train_fn`` (module docstring); returns the ``results.Experiment``.

    Args:
        model: a built ``keras.Model`` (any Keras 3 model ``supermask.convert`` handles); its current
            weights are W0. It is not modified.
        train_fn: ``train_fn(model)`` or ``train_fn(model, callbacks)``; trains ``model`` in place.
        levels: pruning rounds after the dense level 0.
        validation, test: ``(x, y)`` arrays (labels as class indices or one-hot) the networks are
            evaluated on; or ``evaluate``: ``evaluate(model) -> {"val_loss", "val_accuracy",
            "test_loss", "test_accuracy"}`` (missing keys: None) for data that is not arrays.
        rate: per-round fraction: a number for every pruned layer (``scope="global"``: of all of them
            together), ``{layer: fraction}``, or None: the lottery's per kind (dense 0.2, conv 0.1,
            the output layer 0.1; global 0.2).
        scope, ignore, criterion: as ``supermask.prune``; mask1 / mask0: the Mask-1 / Mask-0 actions
            (``supermask.actions``); control: also train each level's random-reinit control.
        seed, trials: the trials' seeds ``seed``, ``seed + 1``, ...
        settings: a JSON-able dict of everything else ``train_fn`` depends on (part of the hash).
        early_stop: ``val_loss`` (the papers') or ``val_accuracy``; eval_every: steps between records.
        tensorboard: a folder for TensorBoard scalars, as the lottery writes them (not part of the hash):
            ``<folder>/<hash>/trial_<seed>/level_<L>[/control]`` (train / val / test loss and accuracy,
            x = iteration) and the masks' density per layer in ``<folder>/<hash>/trial_<seed>`` (x = level).
    """
    if not isinstance(model, keras.Model) or not model.built:
        raise ConfigError("imp needs a built keras.Model (call it once, or build it with keras.Input). "
                          f"Received: {type(model).__name__}")
    arity = _arity(train_fn)
    if (validation is None and test is None) == (evaluate is None):
        raise ConfigError("imp evaluates every network: pass validation=(x, y) and/or test=(x, y) arrays, or "
                          "evaluate=fn(model) -> {'val_loss', 'val_accuracy', 'test_loss', 'test_accuracy'}.")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be an integer >= 1. Received: trials={trials!r}")
    if rewind_iteration and arity < 2:
        raise ConfigError("rewind_iteration needs the weights at that step of level 0: let train_fn take a second "
                          "argument, callbacks, and pass it to fit(callbacks=...).")
    store.check_output_dir(root, "the experiments root (root=)")
    tensorboard = check_tensorboard(tensorboard)
    arrays = {split: _arrays(value, split) for split, value in (("val", validation), ("test", test)) if value is not None}
    evaluate = evaluate or (lambda net: evaluate_arrays(net, arrays))
    networks = {False: tickets.masked_copy(model)}
    layers = prunable_layers(networks[False])
    kinds = {name: layer_kind(layer) for name, layer in layers.items()}
    config = ImpSettings(levels=levels, criterion=criteria.name_of(criterion), mask1=mask1, mask0=mask0,
                         rewind_iteration=rewind_iteration, control=control, pruning=scope,
                         prune_ignore=tuple([ignore] if isinstance(ignore, str) else ignore),
                         **_rates(rate, scope, kinds), model=model_label(model),
                         model_fingerprint=identity.model_fingerprint(model), train_fn=_label(train_fn),
                         train_fn_fingerprint=source_digest(train_fn), settings=_settings_json(settings),
                         dataset=dataset, data_fingerprint=_arrays_digest(arrays) if arrays else None,
                         early_stop=early_stop, eval_every=eval_every, seed=seed)
    config = dataclasses.replace(config, criterion_fingerprint=criteria.fingerprint(config.criterion))
    layout = Layout(kinds, {name: int(np.prod(layer.kernel.shape)) for name, layer in layers.items()})
    seeds = [seed + t for t in range(trials)]
    experiment, _ = runs.prepare_experiment(config, root, seeds, True, verbose)
    w0 = M.get_weights(networks[False])
    for trial_seed in seeds:
        trial_config = dataclasses.replace(config, seed=trial_seed)
        trial_dir = paths.trial(experiment, trial_seed)
        with runs.lock_trials([trial_dir], None, verbose):
            runs.check_backend(trial_dir, backend.name())
            board = None if tensorboard is None else tensorboard / experiment.name / trial_dir.name
            _run_trial(trial_config, trial_dir, layout, networks, model, w0, train_fn, arity, evaluate, verbose, board)
        rows = trial_rows(trial_dir, levels)
        store.write_csv(paths.summary(trial_dir), rows)
        if verbose:
            print(f"\nTrial {trial_seed} ({paths.summary(trial_dir)}):\n{format_table(rows, early_stop)}\n")
    result = load_experiment(experiment)
    write_experiment_summary(result)
    if verbose:
        print(f"Report with figures: supermask report {experiment}")
    return result


def _run_trial(config, trial_dir, layout, networks, model, w0, train_fn, arity, evaluate, verbose, board):
    done_seconds, todo = [], [lv for lv in range(config.levels + 1) if not paths.level(trial_dir, lv).is_dir()]
    total = sum(1 if lv == 0 else 1 + bool(config.control) for lv in todo)  # networks to train
    for level in range(config.levels + 1):
        if level not in todo:
            if verbose:
                print(f"Level {level}: already finished, skipping")
            continue
        if level == 0:
            ones = {name: np.ones(w0[f"{name}/kernel"].shape, dtype=bool) for name in layout.kinds}
            jobs = [Job(config, Path("."), w0, ones)]
        else:
            jobs = level_jobs(config, trial_dir, level, layout)
        with store.atomic_dir(paths.level(trial_dir, level)) as tmp:
            for job in jobs:
                kind = "control" if str(job.folder) != "." else "ticket"
                if verbose:
                    left = (total - len(done_seconds)) * np.mean(done_seconds) if done_seconds else None
                    print(f"Level {level}/{config.levels}: {100 * planned_density(config, layout, level):.1f}% of "
                          f"weights remaining, trial {config.seed} {kind}: training with {config.train_fn}"
                          + (f" (about {duration(left)} left)" if left else ""), flush=True)
                start = time.perf_counter()
                net = _network(networks, model, job.freeze_pruned)
                M.set_weights(net, job.start)
                M.set_masks(net, job.masks)
                tickets.compile_like(net, model)
                keras.utils.set_random_seed(config.seed)
                history, snapshot = _train(net, train_fn, arity, evaluate, config, level)
                result = _Result(history, time.perf_counter() - start)
                save_network(tmp / job.folder, job.start, net, job.masks, result, level, config.early_stop)
                if snapshot is not None:
                    store.save_arrays(paths.weights_rewind(tmp), snapshot)
                done_seconds.append(result.seconds)
                if board is not None:
                    _write_board(board, level, job, history)
                if verbose:
                    last = history[-1]
                    print(f"  done in {duration(result.seconds)}: val accuracy {percent(last.get('val_accuracy'))}, "
                          f"test accuracy {percent(last.get('test_accuracy'))} at iteration {last['iteration']}")


@dataclasses.dataclass
class _Result:  # what ``runs.metrics_of`` reads of a ``TrainResult``
    history: list
    seconds: float


def _train(net, train_fn, arity, evaluate, config, level):
    """Call ``train_fn`` on ``net``; (history rows, weights at the rewind step or None)."""
    recorder = Recorder(evaluate, config.eval_every)
    snap = WeightSnapshot(config.rewind_iteration) if config.rewind_iteration and level == 0 else None
    before = optimizer_step(net)
    if arity >= 2:
        train_fn(net, [recorder] + ([snap] if snap else []))
    else:
        train_fn(net)
    history = recorder.history
    if not history or recorder.steps == 0:  # the callbacks were not used: one record, after training
        history = [{"iteration": max(optimizer_step(net) - before, 0), "epoch": None, "train_loss": None,
                    "train_accuracy": None, **evaluate(net), "seconds": None}]
    for row in history:
        for key in ("val_loss", "val_accuracy", "test_loss", "test_accuracy"):
            row.setdefault(key, None)
    if snap is not None and snap.weights is None:
        raise ConfigError(f"Level 0 trained {recorder.steps} steps, fewer than rewind_iteration="
                          f"{config.rewind_iteration}; or train_fn did not pass the callbacks to fit(callbacks=...).")
    return history, None if snap is None else snap.weights


def _write_board(board, level, job, history):
    """The TensorBoard scalars of one trained network (and, for the ticket, its level's densities)."""
    writer = EventWriter(board / paths.level(".", level).name / job.folder)
    for row in history:
        writer.scalars(row["iteration"], {TAGS[name]: row.get(key) for key, name in LOG_KEYS.items()})
    writer.close()
    if str(job.folder) == ".":
        values = {f"density/{name}": value for name, value in density(job.masks).items()}
        write_scalars(board, level, {**values, "density/overall": overall_density(job.masks)})


def evaluate_arrays(model, arrays, batch_size=EVAL_BATCH):
    """``{"<split>_loss", "<split>_accuracy"}`` of ``model`` on ``arrays`` (``{split: (x, y)}``): the mean
    of the model's compiled loss (sparse cross-entropy from logits if it has none) and the fraction of
    argmax predictions equal to the labels (class indices, or one-hot rows)."""
    loss_fn = keras.losses.get(model.loss) if getattr(model, "loss", None) is not None else \
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    out = {"val_loss": None, "val_accuracy": None, "test_loss": None, "test_accuracy": None}
    for split, (x, y) in arrays.items():
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            logits = model(xb, training=False)
            loss = np.asarray(keras.ops.convert_to_numpy(loss_fn(yb, logits)), dtype=np.float64)
            total += float(loss.mean()) * len(xb)
            labels = yb.argmax(-1) if yb.ndim > 1 else yb
            correct += int((keras.ops.convert_to_numpy(logits).argmax(-1) == labels).sum())
        out[f"{split}_loss"], out[f"{split}_accuracy"] = total / len(x), correct / len(x)
    return out


# --- helpers ----------------------------------------------------------------------------------
def _network(networks, model, freeze_pruned):
    if freeze_pruned not in networks:
        networks[freeze_pruned] = tickets.masked_copy(model, freeze_pruned=freeze_pruned)
    return networks[freeze_pruned]


def _rates(rate, scope, kinds):
    if scope == "global":
        if isinstance(rate, dict):
            raise ConfigError("scope='global' takes one rate, not one per layer; use scope='layerwise'.")
        return {"global_rate": 0.2 if rate is None else rate}
    roles = set(layer_roles(kinds).values())
    fields = {"conv": "rate_conv", "dense": "rate_fc", "output": "rate_output"}
    if isinstance(rate, dict):
        unknown = sorted(set(rate) - set(kinds))
        if unknown:
            raise ConfigError(f"rate names {', '.join(unknown)}, not prunable layers. Valid: {', '.join(kinds)}.")
        return {**{fields[r]: KIND_RATES[r] for r in roles}, "layer_rates": tuple(sorted(rate.items()))}
    return {fields[r]: KIND_RATES[r] if rate is None else rate for r in roles}


def _arity(fn):
    if not callable(fn):
        raise ConfigError(f"train_fn must be a function train_fn(model) or train_fn(model, callbacks). "
                          f"Received: {type(fn).__name__}")
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return 1
    if not params:
        raise ConfigError("train_fn must take the model to train: train_fn(model) or train_fn(model, callbacks).")
    return 2 if len(params) >= 2 or params[0].kind == params[0].VAR_POSITIONAL else 1


def _label(fn):
    return f"{getattr(fn, '__module__', None) or '__main__'}:{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _settings_json(settings):
    try:
        return canonical_json(settings or {})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"settings must be a JSON-able dict of what train_fn depends on ({exc}).") from None


def _arrays(value, split):
    try:
        x, y = value
        x, y = np.asarray(x), np.asarray(y)
    except (TypeError, ValueError):
        raise ConfigError(f"{'validation' if split == 'val' else 'test'} must be a pair (x, y) of arrays.") from None
    if len(x) != len(y) or not len(x):
        raise ConfigError(f"{'validation' if split == 'val' else 'test'}: x and y must hold the same number (> 0) of "
                          f"examples. Received: {len(x)} and {len(y)}")
    return x, y


def _arrays_digest(arrays):
    digest = hashlib.sha256()
    for split in sorted(arrays):
        for array in arrays[split]:
            digest.update(f"{split}:{array.shape}:{array.dtype}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
