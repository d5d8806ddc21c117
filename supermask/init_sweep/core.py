"""The init sweep itself: every criterion x cutoff setting x power x Mask-1 point of one run."""

import time

import numpy as np

from supermask import actions, backend, criteria, pruning, store
from supermask.data import load_dataset
from supermask.engine import EVAL_BATCH_SIZE
from supermask.errors import ConfigError
from supermask.init_sweep.evaluation import build_eval_model, evaluate, layer_kinds, split_arrays
from supermask.init_sweep.output import output_paths, row, summary_lines, write_results
from supermask.init_sweep.schedule import (join, keep_counts, kind_rates, layer_rates, masks_from_rankings,
                                           point_rng, rankings, resolve_schedule)
from supermask.init_sweep.source import load_trained
from supermask.masks import kernels, set_masks, set_weights
from supermask.results import percent
from supermask.settings.init_sweep import InitSweepConfig


def run(run_dir, config=None, *, data=None, data_dir=None, out=None, verbose=1):
    """Evaluate every masked, untrained network of ``config`` over one trained run; one dict per point.

    Args:
        run_dir: folder with weights_init.h5 / weights_final.h5 (hparams.json there or up to 3
            parents up): a ``supermask.train`` output or a lottery trial's ``level_0``.
        config: an ``InitSweepConfig`` (default: all criteria, Mask-1 ``none``, the model's
            reference bases and cutoffs, powers 0..24, the whole test split, seed 0).
        data: an already loaded ``Dataset`` (else the run's dataset is loaded from ``data_dir``).
        out: output path stem; writes ``.csv`` and ``.json`` (default RUN_DIR/init_sweep);
            False writes nothing. Checked before any work.
        verbose: 1 prints a line per point, the time taken and the best points; 0 is silent.

    Points run criterion by criterion, then cutoff setting, power and Mask-1 action; each row
    (``output.row``): criterion, mask1, power, layer_cutoff, prune_base, density,
    density_<layer>, accuracy, loss.
    """
    config = InitSweepConfig() if config is None else config
    if not isinstance(config, InitSweepConfig):
        raise ConfigError(f"config must be an InitSweepConfig. Received: {type(config).__name__}")
    say = print if verbose else (lambda *a, **k: None)
    if out is not False:
        for path in output_paths(out, run_dir):
            store.check_output_file(path, "the sweep results")
    source = load_trained(run_dir)
    model_name = source.hparams["model"]
    if data is None:
        data = load_dataset(source.hparams["dataset"], data_dir=data_dir,
                            validation_size=source.hparams["validation_size"])
    x, y = split_arrays(data, config.split, config.max_examples)
    batch_size = config.batch_size or EVAL_BATCH_SIZE
    model = build_eval_model(model_name, data.input_shape, data.num_classes, source.init)
    init_k, final_k = kernels(source.init), kernels(source.final)
    criteria.check_same_layers(init_k, final_k, "weights_init.h5", "weights_final.h5")
    layers = list(init_k)
    rates = None if model_name in pruning.PRUNE_RATES else kind_rates(layer_kinds(model))
    bases, settings = resolve_schedule(model_name, layers, config.prune_base, config.layer_cutoffs, rates)
    shapes = {layer: init_k[layer].shape for layer in layers}
    sizes = {layer: int(np.size(init_k[layer])) for layer in layers}
    crit_names, mask1_names, powers = config.criterion_names(), config.mask1_names(), config.power_list()

    total = len(crit_names) * len(mask1_names) * len(powers) * len(settings)
    say(f"Init sweep of {source.run_dir} ({model_name} on {data.name}, {config.split} split, "
        f"{len(x)} examples, backend {backend.name()}): {len(crit_names)} criteria x "
        f"{len(mask1_names)} Mask-1 x {len(powers)} powers x {len(settings)} cutoff setting(s) "
        f"= {total} points")
    rows, start = [], time.perf_counter()
    for crit in crit_names:
        ranked = rankings(criteria.compute_scores(crit, init_k, final_k, point_rng(config.seed, "scores", crit)))
        for cutoffs in settings:
            cutoff_rates = layer_rates(layers, bases, cutoffs)
            for power in powers:
                masks = masks_from_rankings(ranked, shapes, keep_counts(sizes, cutoff_rates, power))
                set_masks(model, masks)
                for m1 in mask1_names:
                    rng = point_rng(config.seed, "mask1", crit, m1, join(cutoffs), power)
                    start_state = actions.apply_actions(m1, "mask", init_k, final_k, masks, rng)
                    set_weights(model, {f"{k}/kernel": v for k, v in start_state.weights.items()})
                    loss, acc = evaluate(model, x, y, batch_size)
                    rows.append(row(crit, m1, power, cutoffs, bases, masks, loss, acc))
                    say(f"[{len(rows)}/{total}] {crit} {m1} power {power} cutoffs {join(cutoffs)}: "
                        f"density {percent(rows[-1]['density'])} accuracy {percent(acc)} loss {loss:.4f}")
    seconds = time.perf_counter() - start
    say(f"{total} points in {seconds:.1f} s ({seconds / max(total, 1) * 1000:.1f} ms per point)")
    for line in summary_lines(rows):
        say(line)
    if out is not False:
        meta = {
            "run_dir": str(source.run_dir), "hparams": str(source.hparams_path),
            "model": model_name, "dataset": data.name, "split": config.split,
            "num_examples": len(x), "backend": backend.name(), "seed": config.seed,
            "criteria": list(crit_names), "mask1": list(mask1_names), "powers": list(powers),
            "prune_base": list(bases), "layer_cutoffs": [list(c) for c in settings],
            "seconds": seconds, "seconds_per_point": seconds / max(total, 1),
        }
        csv_path, json_path = write_results(rows, meta, out, source.run_dir)
        say(f"Wrote {csv_path} and {json_path}")
    return rows


def sweep(run_dir, *, criteria_names="all", mask1="none", prune_base=None, powers=None, layer_cutoffs=None,
          split="test", max_examples=None, seed=0, batch_size=None, data=None, data_dir=None, out=None, verbose=1):
    """``run`` with the settings as keywords (``criteria_names`` is ``InitSweepConfig.criteria``).

    ``criteria_names``, ``mask1``: "all", a comma string or a list of names; ``prune_base``: a
    comma string or sequence of bases, one per layer group; ``powers``: ints or a string like
    "0:25" (default 0..24); ``layer_cutoffs``: one setting ("4,6" or (4, 6)) or a list of them;
    ``batch_size``: evaluation batch (default ``EVAL_BATCH_SIZE``). Returns ``run``'s rows.
    """
    config = InitSweepConfig(criteria=criteria_names, mask1=mask1, prune_base=prune_base, powers=powers,
                             layer_cutoffs=layer_cutoffs, split=split, max_examples=max_examples, seed=seed,
                             batch_size=batch_size)
    return run(run_dir, config, data=data, data_dir=data_dir, out=out, verbose=verbose)
