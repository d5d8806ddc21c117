"""Learn a supermask over frozen random weights: ``python -m supermask.train_supermask``.

Builds the model with supermask layers (``models.build(kind="supermask")``),
trains only their scores through the one training seam (``train.train_model``), and
writes the same output layout as ``supermask.train``: ``hparams.json``,
``weights_init.h5`` / ``weights_final.h5`` (``"layer/kernel"``, ``"layer/bias"``,
``"layer/scores"``; kernels and biases are bit-identical between the two),
``masks.h5`` (the final deterministic inference masks), ``model.keras`` and
``metrics.json``.

Evaluation. The history (every ``--eval-every`` iterations, once per epoch by
default) uses the model's inference mode (``--inference``). At the end the run
reports, with the deterministic mask, the accuracy on the whole train / validation /
test splits; and, for the Bernoulli learner, the paper's protocol (Zhou et al.'s
``train_supermask.py``): the mean (and std) test accuracy of ``--eval-samples``
sampled masks, each draw evaluated on the whole test set at once (one draw per
1000-image batch for conv models, to bound memory). Mask density per layer is
reported twice: of the inference mask, and expected (mean of ``sigmoid(scores)``, the
reference's "[Est] percent of 1s").

Example (paper defaults: SGD, momentum 0.9, learning rate 100, batch 250, scores 0)::

    KERAS_BACKEND=jax python -m supermask.train_supermask --model fc --epochs 20 \\
        --data-dir ../shared/data/mnist --out runs/supermask/fc
"""


import contextlib
import dataclasses
from pathlib import Path

import keras
import numpy as np

from supermask import backend, identity, recipes
from supermask.engine import EVAL_BATCH_SIZE, train_many
from supermask.engine.callbacks import Network, check_tensorboard, for_networks
from supermask.errors import ConfigError
from supermask.masks import get_masks, get_weights
from supermask.models import build as build_model
from supermask.models import set_inference_mode, supermask_layers
from supermask.optimizers import compile_model, make_optimizer
from supermask.results import percent
from supermask.runs import check_output, claim_output, load_data, metrics_of, output_folder, save_run, settings_for
from supermask.seeds import MAX_SEED
from supermask.settings import SupermaskConfig, config_hash, to_dict


def layer_options(config):
    """The ``SupermaskLayer`` options of ``config`` (for ``models.build(kind="supermask", supermask=...)``)."""
    options = {
        "learner": config.learner,
        "signed_constant": config.weights == "signed_constant",
        "dynamic_scaling": config.dwr,
        "inference_mode": config.inference,
    }
    if config.learner == "edge-popup":
        options["k"] = config.k
    else:
        options["score_initializer"] = keras.initializers.Constant(config.score_init)
    weight_decay = config.weight_decay
    if weight_decay:
        options["score_regularizer"] = keras.regularizers.L2(weight_decay / 2)
    return options


def build(config, input_shape, num_classes=10):
    """The compiled-ready (uncompiled) supermask model of resolved ``config`` (a built-in, or your
    builder's model converted by ``supermask.convert.supermask``)."""
    return build_model(config.model, input_shape, num_classes, seed=config.seed, kind="supermask",
                     supermask=layer_options(config))


def optimizer_for(config, iterations):
    """The optimiser of resolved ``config`` (``recipes.resolve``: the learner's defaults filled in)
    for a run of ``iterations``: a cosine schedule is Keras's ``CosineDecay`` to 0 (Ramanujan et al.)."""
    cosine = config.lr_schedule == "cosine"
    return make_optimizer(config.learning_rate, name=config.optimizer, momentum=config.momentum,
                          cosine_steps=iterations if cosine else None)


def density_report(model):
    """Per layer and in total: kept / size of the inference mask, and the expected density."""
    report, kept_all, size_all, expected_all = {}, 0, 0, 0.0
    for name, layer in supermask_layers(model).items():
        mask = layer.inference_mask()
        expected = layer.expected_density()
        report[name] = {"kept": int(mask.sum()), "size": int(mask.size),
                        "inference": float(mask.mean()), "expected": expected}
        kept_all += int(mask.sum())
        size_all += int(mask.size)
        expected_all += expected * mask.size
    report["total"] = {"kept": kept_all, "size": size_all, "inference": kept_all / max(size_all, 1),
                       "expected": expected_all / max(size_all, 1)}
    return report


def _densities(model):
    """TensorBoard scalars of the inference mask's density: ``density/<layer>``, ``density/total``."""
    return {f"density/{name}": v["inference"] for name, v in density_report(model).items()}


def _evaluate(model, x, y, batch_size=EVAL_BATCH_SIZE):
    if len(x) == 0:
        return {"loss": None, "accuracy": None}
    logs = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}


def final_evaluation(model, data, config):
    """Deterministic train/val/test metrics and, for bernoulli, the paper's sampled test metric."""
    set_inference_mode(model, "deterministic")
    final = {"deterministic": {}}
    for split, x, y in (("train", data.x_train, data.y_train), ("val", data.x_val, data.y_val),
                        ("test", data.x_test, data.y_test)):
        logs = _evaluate(model, x, y)
        final["deterministic"][f"{split}_loss"] = logs["loss"]
        final["deterministic"][f"{split}_accuracy"] = logs["accuracy"]
    if config.learner == "bernoulli" and len(data.x_test):
        set_inference_mode(model, "sampled")
        has_conv = any(len(layer.kernel.shape) > 2 for layer in supermask_layers(model).values())
        batch = EVAL_BATCH_SIZE if has_conv else len(data.x_test)
        draws = [_evaluate(model, data.x_test, data.y_test, batch) for _ in range(config.eval_samples)]
        accuracies = [d["accuracy"] for d in draws]
        final["sampled"] = {
            "samples": config.eval_samples,
            "test_accuracy_mean": float(np.mean(accuracies)),
            "test_accuracy_std": float(np.std(accuracies)),
            "test_loss_mean": float(np.mean([d["loss"] for d in draws])),
            "test_accuracies": accuracies,
        }
    set_inference_mode(model, config.inference)
    return final


def run(config=None, data_dir=None, out=None, verbose=1, overwrite=False, out_root=None, engine=None, seeds=1, *,
        model=None, data=None, callbacks=None, tensorboard=None, **hparams):
    """Learn the supermask of ``config``; returns the metrics dict (a list of them if ``seeds`` > 1).

    ``config`` (a ``SupermaskConfig``), ``model``, ``data`` and keyword hyperparameters as
    in ``supermask.lottery.run``: your own model's Dense / Conv layers become supermask
    layers over its initial weights. Output folder, ``overwrite`` and ``out_root`` as in ``supermask.train.run``;
    ``hparams.json`` holds the resolved config (every learner default spelled out).
    ``seeds``: learn the masks of seeds ``config.seed`` .. ``config.seed + seeds - 1``
    together (``train_many``: one program on JAX), each written as if it had run alone,
    to ``out/seed_<seed>`` (or ``out_root/<its hash>``).

    ``callbacks``: Keras callbacks called at each record point (``supermask.train.train_model``):
    a list (one seed), or a function ``network -> list`` called per seed (a
    ``supermask.engine.callbacks.Network``: ``label`` "seed <seed>", ``name`` its config hash,
    ``seed``). ``tensorboard``: a folder to write TensorBoard scalars to, one run per seed,
    ``<tensorboard>/<config hash>``: loss and accuracy (``train/``, ``val/``, ``test/``) and the
    inference mask's density per layer (``density/<layer>``, ``density/total``) at each record
    point, x = iteration; off by default, not part of the config or its hash.
    """
    config = settings_for(SupermaskConfig, config, model, **hparams)
    tensorboard = check_tensorboard(tensorboard)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be an integer >= 1. Received: seeds={seeds!r}")
    if config.seed + seeds - 1 > MAX_SEED:
        raise ConfigError(f"The seeds {config.seed} .. {config.seed + seeds - 1} must stay <= {MAX_SEED} "
                          "(2**32 - 1); lower --seed or --seeds.")
    check_output(out, out_root, overwrite)
    data, config = load_data(config, data, data_dir)
    configs = [recipes.resolve(dataclasses.replace(config, seed=config.seed + i), data) for i in range(seeds)]
    probe = build(configs[0], data.input_shape, data.num_classes)  # the architecture, for the run's identity
    configs = [identity.identify(c, probe, data) for c in configs]
    outs = [output_folder(c, None if out is None else (Path(out) / f"seed_{c.seed}" if seeds > 1 else out),
                          out_root) for c in configs]
    with contextlib.ExitStack() as stack:
        for folder in outs:
            stack.enter_context(claim_output(folder, overwrite))
        metrics = _learn(configs, data, outs, verbose, overwrite, engine, callbacks, tensorboard)
    return metrics if seeds > 1 else metrics[0]


def _learn(configs, data, outs, verbose, overwrite, engine, callbacks=None, tensorboard=None):
    config = configs[0]
    keras.utils.set_random_seed(config.seed)
    models = [build(c, data.input_shape, data.num_classes) for c in configs]
    iterations, batch_size = config.iterations, config.batch_size
    for model in models:
        compile_model(model, optimizer_for(config, iterations))
    if verbose:
        print(f"Learning a {config.learner} supermask of {config.model} ({config.weights} weights"
              f"{', DWR' if config.dwr else ''}) on {config.dataset} for {iterations} iterations "
              f"(batch {batch_size}, {config.optimizer} lr {config.learning_rate}, backend {backend.name()}"
              + (f", seeds {config.seed}..{configs[-1].seed} together" if len(configs) > 1 else "") + ")")
    inits = [get_weights(model) for model in models]
    networks = [Network(f"seed {c.seed}", config_hash(c), k, c.seed, role="supermask") for k, c in enumerate(configs)]
    results = train_many(models, data, iterations=iterations, batch_size=batch_size, seeds=[c.seed for c in configs],
                         eval_every=config.eval_every, verbose=verbose, engine=engine,
                         labels=[n.label for n in networks],
                         callbacks=for_networks(callbacks, tensorboard, networks, extra=_densities))
    all_metrics = []
    for c, model, init, result, out in zip(configs, models, inits, results, outs):
        final = final_evaluation(model, data, c)
        metrics = metrics_of(result, c.early_stop, config_hash=config_hash(c), iterations=iterations,
                             epochs=iterations * batch_size / len(data.x_train), final=final,
                             density=density_report(model))
        if out is not None:
            save_run(out, model, overwrite, hparams=to_dict(c), metrics=metrics, weights_init=init,
                     masks=get_masks(model))
        all_metrics.append(metrics)
        if verbose:
            det = final["deterministic"]
            sampled = final.get("sampled")
            density = ", ".join(f"{k} {percent(v['inference'], 1)}" for k, v in metrics["density"].items())
            print(f"{'Seed ' + str(c.seed) + ': d' if len(configs) > 1 else 'D'}one in {result.seconds:.1f} s: "
                  f"test accuracy {percent(det['test_accuracy'])} (deterministic mask)"
                  + (f", {percent(sampled['test_accuracy_mean'])} ± {100 * sampled['test_accuracy_std']:.2f} "
                     f"(mean of {sampled['samples']} sampled masks)" if sampled else "")
                  + f"; mask density {density}" + (f"; results in {out}" if out else ""))
    return all_metrics
