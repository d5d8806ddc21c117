"""One-shot mask sweep at initialisation: ``python -m supermask.init_sweep RUN_DIR``.

From a trained dense run's initial and final weights, build a mask for every criterion
x prune power x layer-cutoff setting, load it into the UNTRAINED network (the init
weights after the Mask-1 action, pruned weights 0, biases from init) and measure its
accuracy and loss. This is the "supermask" experiment of Zhou, Lan, Liu & Yosinski
(2019): masks alone, with no training, already classify far above chance.

Reference: github.com/uber-research/deconstructing-lottery-tickets,
``get_init_loss_train_lottery.py`` (the sweep and its evaluation) and
``get_weight_init.py`` (``main``: how ``--prune_base``, ``--prune_power`` and
``--layer_cutoff`` become per-layer prune percentages). Semantics kept from it:

* **prune base and power**: a layer in group ``k`` keeps a fraction
  ``prune_base[k] ** power`` of its kernel (the reference prunes
  ``(1 - prune_base[k] ** power) * 100`` percent). The README sweeps powers 0..24.
* **layer cutoffs**: comma list of cumulative indices into the network's trainable
  variables, counted as the reference counts them, kernel and bias of each prunable
  layer = 2 variables (fc: fc1 kernel, fc1 bias, fc2 kernel, ... = 6). Variables
  ``[cutoff[k-1], cutoff[k])`` form group ``k`` and use ``prune_base[k]``. Biases are
  never pruned. A cutoff setting with ``g`` groups uses the first ``g`` bases, so
  several settings (e.g. ``4,6`` and ``6``) can be swept against one base list.
* **defaults per model** (``print_train_lottery_iterative_command.sh``): fc
  ``0.8,0.9`` / ``4,6``; conv2 ``0.9,0.8,0.9`` / ``4,8,10``; conv4 ``0.9,0.8,0.9`` /
  ``8,12,14``; conv6 ``0.85,0.8,0.9`` / ``12,16,18``: the output layer is pruned at
  half the hidden dense layers' rate. These are exactly ``1 - pruning.default_rates``.
  Models without a paper's table (your own, resnet20, vgg16) take the lottery's per-kind
  rates (``pruning.KIND_RATES``).
* **split**: the reference reports the test set (``--test_h5``; the README calls it
  "the initial test accuracy"), so ``test`` is the default; ``val`` and ``train`` can
  be chosen.

Deliberate differences: counts come from ``pruning.keep_count`` (nearest integer of
the closed form, the reference truncates the pruned count); ties are broken by index
as in ``pruning.prune`` (the reference breaks them at random), except by the
sign-aware criteria, which break them at random as the reference does (see
``supermask.criteria``); Mask-1 actions are ``supermask.actions``'s (``signed_constant``
uses the std of the layer's initial kernel, as the reference). Randomness (``random``
and the sign-aware criteria's tie-break, random actions) comes from a generator seeded
by ``seed`` and the point's names (``schedule.point_rng``), so every point is
reproducible on its own and the masks of one criterion are nested across powers.

Speed: one model is built and compiled once; a point only assigns kernels and masks
(same shapes every time, so nothing is retraced) and one forward pass per batch of
``supermask.engine.EVAL_BATCH_SIZE`` examples.

Modules, each importing only those before it: ``schedule`` (pure maths: bases, cutoffs,
counts, rankings), ``source`` (the run folder), ``evaluation`` (the compiled model and its
forward-only evaluation), ``output`` (rows, summary, CSV + JSON), ``core`` (``run``, the sweep;
``sweep``, the same with keyword settings), and ``__main__``, the command (``build_parser``,
``main``). The settings are ``supermask.settings.init_sweep.InitSweepConfig``.
"""

from supermask.engine import EVAL_BATCH_SIZE
from supermask.init_sweep.core import run, sweep
from supermask.init_sweep.evaluation import build_eval_model, evaluate, layer_kinds, log_softmax, split_arrays
from supermask.init_sweep.output import best_points, output_paths, summary_lines, write_results
from supermask.init_sweep.schedule import (check_cutoffs, default_schedule, keep_counts, kind_rates, layer_rates,
                                           masks_from_rankings, point_rng, rankings, resolve_schedule)
from supermask.init_sweep.source import HPARAMS_KEYS, Run, find_hparams, load_trained
from supermask.settings.init_sweep import DEFAULT_POWERS, SPLITS, InitSweepConfig, InitSweepSettings

__all__ = [
    "DEFAULT_POWERS", "EVAL_BATCH_SIZE", "HPARAMS_KEYS", "SPLITS", "InitSweepConfig", "InitSweepSettings", "Run",
    "best_points", "build_eval_model", "check_cutoffs", "default_schedule", "evaluate",
    "find_hparams", "keep_counts", "kind_rates", "layer_kinds", "layer_rates", "load_trained", "log_softmax",
    "masks_from_rankings", "output_paths", "point_rng", "rankings", "resolve_schedule", "run", "split_arrays",
    "summary_lines", "sweep", "write_results",
]
