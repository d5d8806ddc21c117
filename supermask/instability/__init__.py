"""Instability analysis (linear mode connectivity): ``python -m supermask.instability``.

Frankle, Dziugaite, Roy & Carbin (2020), "Linear Mode Connectivity and the Lottery Ticket Hypothesis".
From a network at iteration k (k = 0: its initialisation), two copies are trained to the end of the
budget on different data orders (different samples of SGD noise); the error is then measured along
the straight line ``(1 - a) * w1 + a * w2`` between their final weights at ``points`` evenly spaced
``a`` (30 in the paper). The instability is the error barrier height on that line: the highest error
on it minus the mean of the two endpoints' errors (percentage points, ``core.instability``). The
paper finds LeNet-300-100 on MNIST stable (instability about 0) at initialisation, and larger
vision networks stable only after some training: from some k on.

What is run (``runner.run``):

* **dense** (``--ks 0,100,500``): per trial seed, the network built with that seed trains once to
  max(k) (data order = the seed, the recipe's optimiser over the full budget), its weights saved at
  every k; for each k, two copies per seed start from those weights with a fresh optimiser whose
  schedule continues at k (as the lottery's late rewinding does: ``recipe_optimizer(...,
  start_iteration=k)``, ``train_many(start_iteration=k)``), all seeds' copies of one k in ONE
  ``train_many`` call; copy c's data order is seeded by ``core.copy_seeds(seed, k)``.
* **lottery** (``--experiment <root>/<hash> [--levels 0,2,4]``): for each finished level of each
  trial, the ticket's start (its level folder's start weights, i.e. reset to the experiment's rewind
  iteration k with the Mask-1 / Mask-0 actions applied, and its masks; level 0 with late rewinding
  starts from ``weights_rewind.h5``) trains in two copies from k with the experiment's recipe. The
  masks stay on both copies and on every point of the path (pruned weights are 0 all along).
  With a Mask-0 action other than ``mask``, pruned weights keep their frozen start values
  (``freeze_pruned``), as in the experiment.

BatchNorm (``bn``): ``interpolate`` (default) interpolates the moving mean and variance like every
other variable, which is what interpolating two saved networks does; we found no statement in the
paper that the statistics are re-estimated, so this is our reading of its choice, not a quote.
``recompute`` re-estimates them at every point from the first ``path.BN_EXAMPLES`` training examples
in training mode (the usual fix of later work on linear mode connectivity). Only models with
BatchNormalization (resnet20, vgg16, your own) are affected.

Files, ``<root>/<hash of the settings but the seed>/``: ``hparams.json``; ``trial_<seed>/k_<k>.json``
(``level_<L>.json``), one per measured start, written atomically so a rerun measures only the rest;
``path.csv`` (seed, level, k, remaining, split, alpha, error %, loss); ``summary.csv`` (per start,
mean ± std over seeds); ``report/`` (``error_vs_alpha_<split>.png``, ``instability.png``,
``report.md``). The run holds an exclusive lock on its folder (``.<hash>.lock`` beside it).

For the sweep runner: ``run(config, root, data_dir, verbose)``, ``folder(root, config)``,
``is_finished(folder[, config])``, ``rows(folder)``. For two networks you already have:
``linear_path(model, weights_a, weights_b, data, points=30, split="test", bn="interpolate")``.
"""

from supermask.instability.core import STABLE_BELOW, alphas, copy_seeds, instability, interpolate
from supermask.instability.output import first_stable, format_table, read_points, summary_rows
from supermask.instability.path import (BN_EXAMPLES, Path, batchnorm_layers, evaluate_path, linear_path,
                                        recompute_batchnorm)
from supermask.instability.runner import DEFAULT_ROOT, Result, folder, is_finished, rows, run
from supermask.settings.instability import BN_MODES, SPLITS, InstabilityConfig, InstabilitySettings

__all__ = ["BN_EXAMPLES", "BN_MODES", "DEFAULT_ROOT", "SPLITS", "STABLE_BELOW", "InstabilityConfig",
           "InstabilitySettings", "Path", "Result", "alphas", "batchnorm_layers", "copy_seeds", "evaluate_path",
           "first_stable", "folder", "format_table", "instability", "interpolate", "is_finished", "linear_path",
           "read_points", "recompute_batchnorm", "rows", "run", "summary_rows"]
