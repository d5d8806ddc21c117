"""Pruning at initialisation (``python -m supermask.prune_init``), with the sanity checks of
Frankle et al. 2021 and IMP with rewinding for comparison.

Methods (``scores``; an open registry, ``register``), each a keep-score per kernel entry computed
at initialisation: SNIP (Lee et al. 2019) ``|g ⊙ w|``; GraSP (Wang et al. 2020) keep ``-S`` where
``S = -w ⊙ Hg`` is what it removes the largest of; SynFlow (Tanaka et al. 2020) data-free
``dR/dθ ⊙ θ`` on ``|θ|`` with an all-ones input, pruned in 100 rounds on an exponential schedule;
magnitude at init ``|w0|``; random. Pruned globally (one ranking) or layer-wise to a fraction of the
prunable weights remaining (``scores.prune_to``, on ``supermask.pruning``). Gradients and
Hessian-vector products: ``supermask.engine.autodiff``.

Sanity checks (``sanity``): shuffle the mask per layer, reinitialise the weights, invert the scores.

Runner (``core``): every method x variant x density x seed scored at init, pruned, trained K at a
time (``engine.train_many``) with the model's recipe; IMP levels of a lottery experiment
(``--imp``) give the "imp" rows and their shuffle / reinit checks (``imp``). Writes
``<root>/<hash>/{hparams.json, cells/, results.csv, summary.csv, report/}``.

Modules, each importing only those before it: ``scores``, ``sanity``, ``imp``, ``output``,
``core``, ``__main__``. Settings: ``supermask.settings.prune_init.PruneInitConfig``.

For the sweep runner: ``run(config, root, data_dir, verbose)``, ``folder(root, config)``,
``is_finished(folder)``, ``rows(folder)``.
"""

from supermask.prune_init.core import Cell, PruneInitResult, folder, is_finished, plan, rows, run
from supermask.prune_init.sanity import VARIANTS, invert, reinit, shuffle
from supermask.prune_init.scores import (BUILTIN, ITERATIVE, METHODS, SCOPES, ScoreOptions, get_method, grasp,
                                         magnitude, masks_at_densities, masks_at_init, mean_gradient, prune_to,
                                         random, register, snip, synflow, synflow_scores)
from supermask.settings.prune_init import PruneInitConfig, PruneInitSettings

__all__ = ["BUILTIN", "Cell", "ITERATIVE", "METHODS", "PruneInitConfig", "PruneInitResult", "PruneInitSettings",
           "SCOPES", "ScoreOptions", "VARIANTS", "folder", "get_method", "grasp", "invert", "is_finished",
           "magnitude", "masks_at_densities", "masks_at_init", "mean_gradient", "plan", "prune_to", "random",
           "register", "reinit", "rows", "run", "shuffle", "snip", "synflow", "synflow_scores"]
