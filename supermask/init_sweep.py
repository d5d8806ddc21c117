"""One-shot mask sweep at initialisation: ``python -m supermask.init_sweep RUN_DIR``.

From a trained dense run's initial and final weights, build a mask for every criterion
x prune fraction x layer-cutoff setting, load it into the UNTRAINED network (the init
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
by ``seed`` and the point's names, so every point is reproducible on its own and the
masks of one criterion are nested across powers.

Speed: one model is built and compiled once; a point only assigns kernels and masks
(same shapes every time, so nothing is retraced) and one forward pass per batch.
"""

import csv
import math
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supermask import actions, backend, criteria, paths, pruning, store
from supermask.cli import ArgumentParser, percent
from supermask.config import check_seed
from supermask.data import load_dataset
from supermask.errors import ConfigError, SupermaskError
from supermask.masks import get_weights, kernels, set_masks, set_weights
from supermask.convert import layer_kind, prunable_layers
from supermask.models import build
from supermask.train import compile_model, make_optimizer

Weights = dict[str, np.ndarray]
Masks = dict[str, np.ndarray]

DEFAULT_POWERS = tuple(range(25))
SPLITS = ("test", "val", "train")
EVAL_BATCH_SIZE = 5000
HPARAMS_KEYS = ("model", "dataset", "validation_size")
HPARAMS_SEARCH_DEPTH = 3  # parents of RUN_DIR searched for hparams.json
_PRODUCER = ("`python -m supermask.train --out RUN_DIR` (or a lottery experiment, "
             "whose level_0 folder holds them)")


# --- run folder --------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A trained dense run: ``hparams`` (dict from ``hparams_path``), ``init`` and
    ``final`` weights (``{"layer/var": array}`` as written by ``masks.get_weights``)."""

    run_dir: Path
    hparams_path: Path
    hparams: dict
    init: Weights
    final: Weights


def find_hparams(run_dir) -> Path:
    """``hparams.json`` in ``run_dir`` or one of its first 3 parents; SupermaskError if none."""
    run_dir = Path(run_dir)
    candidates = [run_dir, *list(run_dir.resolve().parents)[:HPARAMS_SEARCH_DEPTH]]
    for folder in candidates:
        if paths.hparams(folder).is_file():
            return paths.hparams(folder)
    raise SupermaskError(
        f"No hparams.json in {run_dir} or its {HPARAMS_SEARCH_DEPTH} parent folders. "
        f"It is written by {_PRODUCER}."
    )


def load_run(run_dir) -> Run:
    """Read a run folder (see ``Run``); clear SupermaskError for anything missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SupermaskError(
            f"Run folder {run_dir} does not exist. Pass the output folder of {_PRODUCER}."
        )
    for path in (paths.weights_init(run_dir), paths.weights_final(run_dir)):
        if not path.is_file():
            raise SupermaskError(
                f"Missing {path}: {run_dir} must hold weights_init.h5 and weights_final.h5, "
                f"which are written by {_PRODUCER}."
            )
    hparams_path = find_hparams(run_dir)
    hparams = store.read_json(hparams_path)
    missing = [key for key in HPARAMS_KEYS if not isinstance(hparams, dict) or key not in hparams]
    if missing:
        raise SupermaskError(f"{hparams_path} lacks {', '.join(missing)}; it must name "
                             f"{', '.join(HPARAMS_KEYS)} (as supermask.train writes it).")
    _check_dense(run_dir)
    return Run(run_dir, hparams_path, hparams,
               store.load_arrays(paths.weights_init(run_dir)),
               store.load_arrays(paths.weights_final(run_dir)))


def _check_dense(run_dir) -> None:
    """ConfigError if the run trained with pruned weights (the sweep starts from dense)."""
    if not paths.masks(run_dir).is_file():
        return
    pruned = {k: int(np.size(m) - np.count_nonzero(m))
              for k, m in store.load_arrays(paths.masks(run_dir)).items()}
    if any(pruned.values()):
        raise ConfigError(
            f"{paths.masks(run_dir)} has pruned weights {pruned}: the sweep needs a dense "
            "run (a supermask.train output or a lottery experiment's level_0)."
        )


# --- option parsing ------------------------------------------------------------


def parse_names(text, registry: dict, getter) -> list[str]:
    """``"all"`` or a comma list of names from ``registry``, validated by ``getter``
    (ConfigError listing the valid names). Order kept, duplicates dropped."""
    if isinstance(text, str):
        items = [s.strip() for s in text.split(",") if s.strip()]
    else:
        items = list(text)
    if items == ["all"]:
        return list(registry)
    if not items:
        raise ConfigError(f"Give at least one name (or 'all'). Valid names: {', '.join(registry)}")
    for name in items:
        getter(name)
    return list(dict.fromkeys(items))


def parse_powers(text) -> tuple[int, ...]:
    """Prune powers from ``"0:25"`` (a Python range, step optional), ``"0,5,10"`` or a mix."""
    if not isinstance(text, str):
        powers = list(text)
    else:
        powers = []
        for item in (s.strip() for s in text.split(",")):
            try:
                parts = [int(p) for p in item.split(":")]
            except ValueError:
                raise ConfigError(f"Bad power {item!r}: use integers, a range like 0:25, or a "
                                  "comma list like 0,5,10.") from None
            if len(parts) == 1:
                powers.append(parts[0])
            elif len(parts) in (2, 3):
                powers.extend(range(*parts))
            else:
                raise ConfigError(f"Bad power range {item!r}: use START:STOP or START:STOP:STEP.")
    if not powers or any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0
                         for p in powers):
        raise ConfigError(f"Prune powers must be a non-empty list of integers >= 0. Received {text!r}.")
    return tuple(dict.fromkeys(int(p) for p in powers))


def _parse_list(text, kind, what):
    if not isinstance(text, str):
        return tuple(text)
    try:
        return tuple(kind(s) for s in text.split(","))
    except ValueError:
        raise ConfigError(f"Bad {what} {text!r}: give a comma list of numbers.") from None


def parse_bases(text) -> tuple[float, ...]:
    """Prune bases (keep fraction per power) from ``"0.8,0.9"``; each in (0, 1]."""
    bases = _parse_list(text, float, "--prune-base")
    if not bases or not all(isinstance(b, (int, float)) and 0.0 < b <= 1.0 for b in bases):
        raise ConfigError(f"Prune bases must be numbers in (0, 1]. Received {text!r}.")
    return tuple(float(b) for b in bases)


def parse_cutoffs(text) -> tuple[int, ...]:
    """One layer-cutoff setting from ``"4,6"`` (reference units, see module docstring)."""
    return tuple(int(c) for c in _parse_list(text, int, "--layer-cutoffs"))


# --- pruning schedule ------------------------------------------------------------


def default_schedule(model_name: str, layers: list[str], rates=None):
    """The reference's ``(prune_bases, layer_cutoffs)`` for a model: consecutive layers
    with the same per-round rate form one group; base = 1 - rate. ``rates``: ``{layer: rate}``
    (default: the papers' table, ``pruning.default_rates``; ``kind_rates`` for other models)."""
    rates = pruning.default_rates(model_name, layers) if rates is None else rates
    bases, cutoffs = [], []
    for i, layer in enumerate(layers):
        base = round(1.0 - rates[layer], 12)
        if bases and bases[-1] == base:
            cutoffs[-1] = 2 * (i + 1)
        else:
            bases.append(base)
            cutoffs.append(2 * (i + 1))
    return tuple(bases), tuple(cutoffs)


def check_cutoffs(cutoffs, layers: list[str], num_bases: int) -> None:
    """ConfigError unless ``cutoffs`` is a valid setting for ``layers`` and the bases.

    Valid: strictly increasing even integers (2 variables, kernel and bias, per layer)
    ending at ``2 * len(layers)``, at most ``num_bases`` groups.
    """
    n = 2 * len(layers)
    names = ", ".join(layers)
    if (not cutoffs or any(c <= 0 or c % 2 for c in cutoffs)
            or list(cutoffs) != sorted(set(cutoffs)) or cutoffs[-1] != n):
        raise ConfigError(
            f"Bad layer cutoffs {_join(cutoffs)}: they count trainable variables as the "
            f"reference does (kernel + bias = 2 per layer; layers {names}), so they must be "
            f"increasing even numbers ending at {n}, e.g. {_join(range(2, n + 1, 2)[-2:])}."
        )
    if len(cutoffs) > num_bases:
        raise ConfigError(
            f"Layer cutoffs {_join(cutoffs)} make {len(cutoffs)} groups but only {num_bases} "
            "prune base(s) were given; give one base per group (--prune-base)."
        )


def layer_rates(layers: list[str], bases, cutoffs) -> dict[str, float]:
    """Per-round prune rate ``1 - base`` of each layer (``{layer: float in [0, 1)}``):
    layer ``i`` (variables ``2i, 2i+1``) is in the first group whose cutoff exceeds ``2i``."""
    check_cutoffs(cutoffs, layers, len(bases))
    out = {}
    for i, layer in enumerate(layers):
        group = next(k for k, c in enumerate(cutoffs) if 2 * i < c)
        out[layer] = 1.0 - bases[group]
    return out


def kind_rates(model):
    """``{layer: rate}`` for a model without a paper's table (your own, resnet20, vgg16): the
    lottery's per-kind defaults (``pruning.KIND_RATES``: conv 0.1, dense 0.2, the last prunable
    layer 0.1), as ``supermask.lottery`` prunes such a model layer-wise."""
    kinds = {key: layer_kind(layer) for key, layer in prunable_layers(model).items()}
    return {key: pruning.KIND_RATES[role] for key, role in pruning.layer_roles(kinds).items()}


def resolve_schedule(model_name, layers, prune_base=None, layer_cutoffs=None, rates=None):
    """``(bases, [cutoff settings])`` with the model's reference defaults filled in
    (``rates``: see ``default_schedule``).

    Without cutoffs: the default setting if the number of bases matches it (or no
    bases given), a single group of all layers if one base is given.
    """
    default_bases, default_cutoffs = default_schedule(model_name, layers, rates)
    bases = default_bases if prune_base is None else parse_bases(prune_base)
    if layer_cutoffs is None:
        if len(bases) == len(default_cutoffs):
            settings = [default_cutoffs]
        elif len(bases) == 1:
            settings = [(2 * len(layers),)]
        else:
            raise ConfigError(
                f"{len(bases)} prune bases given but model {model_name!r} groups its layers "
                f"in {len(default_cutoffs)} by default (cutoffs {_join(default_cutoffs)}); "
                "give 1 or that many bases, or pass --layer-cutoffs."
            )
    else:
        if isinstance(layer_cutoffs, str) or (layer_cutoffs and isinstance(layer_cutoffs[0], int)):
            layer_cutoffs = [layer_cutoffs]
        settings = list(dict.fromkeys(parse_cutoffs(c) for c in layer_cutoffs))
    if not settings:
        raise ConfigError("Give at least one layer-cutoff setting.")
    for cutoffs in settings:
        check_cutoffs(cutoffs, layers, len(bases))
    return bases, settings


def keep_counts(sizes: dict[str, int], rates: dict[str, float], power: int) -> dict[str, int]:
    """Weights (a count) each layer keeps at ``power``: ``keep_count(size, rate, power)``."""
    return {layer: pruning.keep_count(sizes[layer], rates[layer], power) for layer in sizes}


def rankings(scores: Weights) -> dict[str, np.ndarray]:
    """Flat indices of each layer's weights, best score first (int array, size of the kernel).

    Same order as ``pruning.prune`` on an all-True mask (stable sort by descending
    score, lower index first on ties), so ``masks_from_rankings`` equals ``prune``.
    """
    out = {}
    for layer, score in scores.items():
        flat = np.asarray(score, dtype=np.float64).ravel()
        if np.isnan(flat).any():
            raise ConfigError(f"Layer {layer!r}: scores contain NaN (non-finite weights?).")
        out[layer] = np.argsort(-flat, kind="stable")
    return out


def masks_from_rankings(ranked, shapes, keep: dict[str, int]) -> Masks:
    """Bool masks (kernel shapes) keeping the ``keep[layer]`` best-ranked weights."""
    out = {}
    for layer, order in ranked.items():
        flat = np.zeros(order.size, dtype=bool)
        flat[order[:keep[layer]]] = True
        out[layer] = flat.reshape(shapes[layer])
    return out


def point_rng(seed: int, *keys) -> np.random.Generator:
    """Generator for one point, from ``seed`` and names (e.g. criterion, action, power)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0. Received {seed!r}.")
    return np.random.default_rng([int(seed), *(zlib.crc32(str(k).encode()) for k in keys)])


# --- evaluation ----------------------------------------------------------------


def split_arrays(data, split: str, max_examples=None):
    """``(x, y)`` of ``split`` (one of SPLITS), the first ``max_examples`` if given."""
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}. Valid splits: {', '.join(SPLITS)}")
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if max_examples is not None:
        _check_positive("max_examples", max_examples)
        x, y = x[:max_examples], y[:max_examples]
    if len(x) == 0:
        raise ConfigError(f"The {split} split of {data.name} is empty; choose another --split.")
    return x, y


def _check_positive(name, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer. Received {name}={value!r}.")


def evaluate(model, x, y, batch_size=EVAL_BATCH_SIZE):
    """``(loss, accuracy)`` of ``model`` on images ``x`` and int labels ``y``.

    loss: mean softmax cross-entropy of the logits (nats); accuracy: fraction of argmax
    predictions equal to ``y``. Runs ``predict_on_batch`` on chunks of ``batch_size``
    (every chunk but maybe the last has the same shape, so nothing is retraced) and
    reduces in float64 numpy: no per-call dataset or metric set-up, which costs
    ``model.evaluate`` ~0.1 s a call on TensorFlow and PyTorch.
    """
    correct, nll = 0, 0.0
    for start in range(0, len(x), batch_size):
        logits = np.asarray(model.predict_on_batch(x[start:start + batch_size]), dtype=np.float64)
        labels = np.asarray(y[start:start + batch_size])
        correct += int(np.count_nonzero(logits.argmax(axis=1) == labels))
        nll += float(-log_softmax(logits)[np.arange(len(labels)), labels].sum())
    return nll / len(x), correct / len(x)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities of ``(batch, classes)`` logits, computed stably."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def build_eval_model(model_name, input_shape, num_classes, init: Weights):
    """One compiled model holding ``init`` (keys must match the model's exactly)."""
    model = build(model_name, input_shape, num_classes, seed=0)
    expected, got = set(get_weights(model)), set(init)
    if expected != got:
        raise ConfigError(
            f"weights_init.h5 does not fit model {model_name!r} on {input_shape}: "
            f"missing {sorted(expected - got)}, unexpected {sorted(got - expected)}."
        )
    set_weights(model, init)
    # Compiled like a training model (same jit setting, loss and metric) so that callers
    # can also use ``model.evaluate``; the optimiser is never used.
    compile_model(model, make_optimizer(1e-3))
    return model


# --- the sweep -------------------------------------------------------------------


def sweep(run_dir, *, criteria_names="all", mask1="none", prune_base=None, powers=DEFAULT_POWERS,
          layer_cutoffs=None, split="test", max_examples=None, seed=0, data=None, data_dir=None,
          out=None, batch_size=EVAL_BATCH_SIZE, verbose=1):
    """Evaluate every masked untrained network; return one dict per point.

    Args:
        run_dir: folder with weights_init.h5 / weights_final.h5 (hparams.json there or
            up to 3 parents up).
        criteria_names, mask1: "all", a comma string or a list of names.
        prune_base: comma string or sequence of bases, one per layer group (default: the
            model's reference values). powers: ints or a string like "0:25".
        layer_cutoffs: one setting ("4,6" or (4, 6)) or a list of settings (default:
            the model's reference setting).
        split: "test" (the reference's), "val" or "train"; max_examples: first N only.
        data: an already loaded ``Dataset`` (else loaded from ``data_dir``).
        out: output path stem; writes ``.csv`` and ``.json`` (default
            RUN_DIR/init_sweep); False writes nothing.

    Each row: criterion, mask1, power, layer_cutoff ("4,6"), prune_base ("0.8,0.9"),
    density (kept fraction of all kernels), density_<layer> per layer, accuracy
    (fraction), loss (mean cross-entropy, nats).
    """
    say = print if verbose else (lambda *a, **k: None)
    crit_names = parse_names(criteria_names, criteria.CRITERIA, criteria.get_criterion)
    mask1_names = parse_names(mask1, actions.MASK1_ACTIONS, actions.get_mask1)
    powers = parse_powers(powers)
    check_seed(seed)  # validates the seed before any work
    if out is not False:
        for path in output_paths(out, run_dir):
            store.check_output_file(path, "the sweep results")
    _check_positive("batch_size", batch_size)
    if max_examples is not None:
        _check_positive("max_examples", max_examples)
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}. Valid splits: {', '.join(SPLITS)}")
    run = load_run(run_dir)
    if data is None:
        data = load_dataset(run.hparams["dataset"], data_dir=data_dir,
                            validation_size=run.hparams["validation_size"])
    x, y = split_arrays(data, split, max_examples)
    model = build_eval_model(run.hparams["model"], data.input_shape, data.num_classes, run.init)
    init_k, final_k = kernels(run.init), kernels(run.final)
    criteria.check_same_layers(init_k, final_k, "weights_init.h5", "weights_final.h5")
    layers = list(init_k)
    paper = run.hparams["model"] in pruning.PRUNE_RATES
    bases, settings = resolve_schedule(run.hparams["model"], layers, prune_base, layer_cutoffs,
                                       rates=None if paper else kind_rates(model))
    shapes = {layer: init_k[layer].shape for layer in layers}
    sizes = {layer: int(np.size(init_k[layer])) for layer in layers}

    total = len(crit_names) * len(mask1_names) * len(powers) * len(settings)
    say(f"Init sweep of {run.run_dir} ({run.hparams['model']} on {data.name}, {split} split, "
        f"{len(x)} examples, backend {backend.name()}): {len(crit_names)} criteria x "
        f"{len(mask1_names)} Mask-1 x {len(powers)} powers x {len(settings)} cutoff setting(s) "
        f"= {total} points")
    rows, start = [], time.perf_counter()
    for crit in crit_names:
        ranked = rankings(criteria.compute_scores(crit, init_k, final_k, point_rng(seed, "scores", crit)))
        for cutoffs in settings:
            rates = layer_rates(layers, bases, cutoffs)
            for power in powers:
                point_masks = masks_from_rankings(ranked, shapes, keep_counts(sizes, rates, power))
                set_masks(model, point_masks)
                for m1 in mask1_names:
                    rng = point_rng(seed, "mask1", crit, m1, _join(cutoffs), power)
                    start_state = actions.apply_actions(m1, "mask", init_k, final_k, point_masks, rng)
                    set_weights(model, {f"{k}/kernel": v for k, v in start_state.weights.items()})
                    loss, acc = evaluate(model, x, y, batch_size)
                    rows.append(_row(crit, m1, power, cutoffs, bases, point_masks, loss, acc))
                    say(f"[{len(rows)}/{total}] {crit} {m1} power {power} cutoffs {_join(cutoffs)}: "
                        f"density {percent(rows[-1]['density'])} accuracy {percent(acc)} loss {loss:.4f}")
    seconds = time.perf_counter() - start
    say(f"{total} points in {seconds:.1f} s ({seconds / max(total, 1) * 1000:.1f} ms per point)")
    for line in summary_lines(rows):
        say(line)
    if out is not False:
        meta = {
            "run_dir": str(run.run_dir), "hparams": str(run.hparams_path),
            "model": run.hparams["model"], "dataset": data.name, "split": split,
            "num_examples": len(x), "backend": backend.name(), "seed": seed,
            "criteria": crit_names, "mask1": mask1_names, "powers": list(powers),
            "prune_base": list(bases), "layer_cutoffs": [list(c) for c in settings],
            "seconds": seconds, "seconds_per_point": seconds / max(total, 1),
        }
        csv_path, json_path = write_results(rows, meta, out if out is not None else None, run.run_dir)
        say(f"Wrote {csv_path} and {json_path}")
    return rows


def _join(values) -> str:
    return ",".join(str(v) for v in values)


def _row(crit, m1, power, cutoffs, bases, point_masks, loss, acc) -> dict:
    """One result row (flat, so the CSV and the JSON hold the same fields)."""
    row = {
        "criterion": crit, "mask1": m1, "power": int(power),
        "layer_cutoff": _join(cutoffs), "prune_base": _join(bases[:len(cutoffs)]),
        "density": pruning.overall_density(point_masks),
    }
    row.update({f"density_{layer}": d for layer, d in pruning.density(point_masks).items()})
    row["accuracy"] = acc
    row["loss"] = loss if math.isfinite(loss) else None
    return row


def best_points(rows) -> tuple[dict, dict]:
    """``({criterion: best row}, best row overall)``: highest accuracy, first on ties."""
    best = {}
    for row in rows:
        if row["criterion"] not in best or row["accuracy"] > best[row["criterion"]]["accuracy"]:
            best[row["criterion"]] = row
    overall = max(best.values(), key=lambda r: r["accuracy"]) if best else None
    return best, overall


def summary_lines(rows) -> list[str]:
    """Human-readable best point per criterion and overall."""
    best, overall = best_points(rows)
    if overall is None:
        return []

    def describe(r):
        return (f"accuracy {percent(r['accuracy'])} at density {percent(r['density'])} (power {r['power']}, "
                f"mask1 {r['mask1']}, cutoffs {r['layer_cutoff']})")

    width = max(len(name) for name in best)
    lines = ["Best point per criterion:"]
    lines += [f"  {name:<{width}}  {describe(r)}" for name, r in best.items()]
    lines.append(f"Best overall: {overall['criterion']}, {describe(overall)}")
    return lines


def output_paths(out, run_dir) -> tuple[Path, Path]:
    """``(csv, json)`` paths: ``out`` with its .csv/.json suffix replaced, or both added;
    default ``RUN_DIR/init_sweep.csv`` and ``.json``."""
    stem = Path(run_dir) / "init_sweep" if out is None else Path(out)
    if stem.suffix in (".csv", ".json"):
        stem = stem.with_suffix("")
    return stem.parent / f"{stem.name}.csv", stem.parent / f"{stem.name}.json"


def write_results(rows, meta, out, run_dir) -> tuple[Path, Path]:
    """Write the rows as CSV and (with ``meta``) as JSON, each atomically."""
    csv_path, json_path = output_paths(out, run_dir)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with store.atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    store.write_json(json_path, {**meta, "rows": rows})
    return csv_path, json_path


# --- command line ------------------------------------------------------------------


def build_parser():
    parser = ArgumentParser(
        prog="python -m supermask.init_sweep",
        description="One-shot mask sweep at init (Zhou et al. 2019): for every mask criterion x "
                    "prune power x layer-cutoff setting, the accuracy and loss of the masked, "
                    "untrained network built from a trained run's initial and final weights. "
                    "The backend is chosen by KERAS_BACKEND.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="folder with weights_init.h5 and weights_final.h5 (a supermask.train "
                             "--out folder or a lottery level_0); hparams.json there or up to 3 parents up")
    parser.add_argument("--criteria", default="all",
                        help=f"comma list of mask criteria, or all (default: all): {', '.join(criteria.CRITERIA)}")
    parser.add_argument("--mask1", default="none",
                        help="comma list of Mask-1 actions applied to the kept init weights, or all "
                             f"(default: none; the paper's supermask uses signed_constant): "
                             f"{', '.join(actions.MASK1_ACTIONS)}")
    parser.add_argument("--prune-base", default=None,
                        help="comma list of keep fractions per power, one per layer group: a layer keeps "
                             "base**power of its kernel (default: the model's reference values, "
                             "fc 0.8,0.9; conv2/conv4 0.9,0.8,0.9; conv6 0.85,0.8,0.9)")
    parser.add_argument("--powers", default="0:25",
                        help="prune powers: START:STOP (a range), a comma list, or both (default: 0:25)")
    parser.add_argument("--layer-cutoffs", nargs="+", default=None, metavar="CUTOFFS",
                        help="one or more settings, each a comma list of cumulative trainable-variable "
                             "counts closing a layer group (kernel + bias = 2 per layer, as in the "
                             "reference); group k uses the k-th base (default: fc 4,6; conv2 4,8,10; "
                             "conv4 8,12,14; conv6 12,16,18)")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="split to evaluate on (default: test, as the reference)")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="evaluate on the first N examples of the split only")
    parser.add_argument("--batch-size", type=int, default=EVAL_BATCH_SIZE,
                        help=f"evaluation batch size (default: {EVAL_BATCH_SIZE})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the random criterion and random Mask-1 actions (default: 0)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset files (default: $SUPERMASK_DATA, then the cache, then download)")
    parser.add_argument("--out", default=None,
                        help="output path; .csv and .json are written (default: RUN_DIR/init_sweep.csv and .json)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return sweep(
        args.run_dir, criteria_names=args.criteria, mask1=args.mask1, prune_base=args.prune_base,
        powers=args.powers, layer_cutoffs=args.layer_cutoffs, split=args.split,
        max_examples=args.max_examples, seed=args.seed, data_dir=args.data_dir, out=args.out,
        batch_size=args.batch_size, verbose=0 if args.quiet else 1,
    )


if __name__ == "__main__":
    from supermask.cli import run_main

    run_main(main)
