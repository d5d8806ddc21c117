"""Pruning schedule and mask arithmetic (pure numpy).

Masks are ``dict[str, np.ndarray of bool]`` keyed by layer name, each the shape of
that layer's kernel (dense ``(in, out)``, conv ``(kh, kw, cin, cout)``); True = kept.

Schedule (Frankle & Carbin 2019; Zhou et al. 2019): at each iterative round a fixed
fraction ``rate`` of a layer's REMAINING weights is removed, so after ``level`` rounds
a fraction ``(1 - rate) ** level`` of the layer remains. The per-layer rates are the
ones used by the Zhou et al. reference scripts
(uber-research/deconstructing-lottery-tickets, ``print_train_lottery_iterative_command.sh``:
``prune_base``/``layer_cutoff`` per network, rate = 1 - prune_base).

Counts: the reference prunes ``int(remaining * rate)`` per round
(``get_weight_init.py``, ``get_mask_by_layer_by_weight``), so its rounding compounds.
We instead derive the count at every level from the closed form (``keep_count``), so
level 20 keeps exactly ``round(size * (1 - rate) ** 20)`` weights.

Global pruning (``prune_global_level``; open_lth's ``sparse_global`` strategy,
``open_lth/pruning/sparse_global.py``): one ranking over the unpruned weights of all
pruned layers together, so layers lose weights in proportion to how many small scores
they hold. open_lth prunes ``ceil(fraction * remaining)`` weights per round and keeps
those strictly above a threshold (ties at it all go); we keep exactly
``keep_count(total, rate, level)`` of the pruned layers' ``total`` weights, ties broken by
layer order, then flat index. Layers in ``ignore`` (open_lth's
``pruning_layers_to_ignore``, e.g. the output layer) keep their masks.

Models other than the four built-ins get per-round rates by layer kind
(``kind_rates``): convolutions, dense layers, and the output layer (the last prunable one).
"""

import math
import numbers
from typing import Mapping

import numpy as np

from supermask.criteria import check_same_layers
from supermask.errors import ConfigError

Weights = dict[str, np.ndarray]
Masks = dict[str, np.ndarray]

# Per-round pruning fraction for each layer of each model (layer names are fixed by
# the models module: conv1..conv6, hidden dense fc1, fc2, and the output layer).
PRUNE_RATES: dict[str, dict[str, float]] = {
    "fc": {"fc1": 0.2, "fc2": 0.2, "output": 0.1},
    "conv2": {"conv1": 0.1, "conv2": 0.1, "fc1": 0.2, "fc2": 0.2, "output": 0.1},
    "conv4": {
        **{f"conv{i}": 0.1 for i in range(1, 5)},
        "fc1": 0.2,
        "fc2": 0.2,
        "output": 0.1,
    },
    "conv6": {
        **{f"conv{i}": 0.15 for i in range(1, 7)},
        "fc1": 0.2,
        "fc2": 0.2,
        "output": 0.1,
    },
}


def default_rates(model_name: str, layer_names: list[str]) -> dict[str, float]:
    """Frankle & Carbin per-round pruning fractions ``{layer: rate in [0, 1)}``.

    ``fc``: fc1/fc2 0.2, output 0.1. ``conv2``/``conv4``: conv 0.1, fc1/fc2 0.2,
    output 0.1. ``conv6``: conv 0.15, fc1/fc2 0.2, output 0.1. ConfigError for an
    unknown model or a layer name the model does not have.
    """
    if model_name not in PRUNE_RATES:
        raise ConfigError(
            f"Unknown model {model_name!r}: the papers' per-layer rates exist for the built-in models "
            f"{', '.join(PRUNE_RATES)} only."
        )
    table = PRUNE_RATES[model_name]
    unknown = [name for name in layer_names if name not in table]
    if unknown:
        raise ConfigError(
            f"Model {model_name!r} has no prunable layer(s) {unknown}. "
            f"Valid layers: {', '.join(table)}"
        )
    return {name: table[name] for name in layer_names}


# Per-round fractions by layer kind for models other than the built-ins: Frankle & Carbin's
# conv2 / conv4 (conv 0.1), LeNet (dense 0.2) and output (0.1) rates.
KIND_RATES = {"conv": 0.1, "dense": 0.2, "output": 0.1}
GLOBAL_RATE = 0.2  # open_lth's default pruning_fraction for sparse_global


def layer_roles(kinds: Mapping[str, str]) -> dict[str, str]:
    """``{layer: "conv" | "dense" | "output"}`` from ``{layer: "conv" | "dense"}`` in model order:
    the last layer is the output layer."""
    names = list(kinds)
    return {name: "output" if i == len(names) - 1 else kinds[name] for i, name in enumerate(names)}


def _check_rate_level(rate: float, level: int) -> None:
    if isinstance(rate, bool) or not (isinstance(rate, numbers.Real) and 0.0 <= rate < 1.0):
        raise ConfigError(f"Pruning rate must be a number in [0, 1), got {rate!r}.")
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 0:
        raise ConfigError(f"Pruning level must be an integer >= 0, got {level!r}.")


def density_at_level(rate: float, level: int) -> float:
    """Fraction of a layer's weights remaining after ``level`` rounds: ``(1 - rate) ** level``."""
    _check_rate_level(rate, level)
    return (1.0 - float(rate)) ** int(level)


def keep_count(size: int, rate: float, level: int) -> int:
    """Number of weights (a count) a layer of ``size`` weights keeps after ``level`` rounds.

    Computed from the total, never round by round: ``floor(size * (1 - rate) ** level
    + 0.5)``, i.e. the closed form rounded to the nearest integer, halves rounded up.
    Consecutive levels therefore never drift from the closed form.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ConfigError(f"Layer size must be an integer >= 0, got {size!r}.")
    return int(math.floor(int(size) * density_at_level(rate, level) + 0.5))


def prune(scores: Weights, masks: Masks, keep: Mapping[str, int]) -> Masks:
    """New masks keeping, in each layer of ``keep``, exactly ``keep[layer]`` weights.

    Kept weights are the currently unpruned ones (mask True) with the largest scores
    (``scores[layer]``: float array, kernel shape); already-pruned weights stay pruned.
    Ties are broken by flat (C-order) index, lower index kept first, so the result is
    deterministic. Layers absent from ``keep`` are copied unchanged. ConfigError if
    ``keep[layer]`` exceeds the unpruned count, is negative, a layer or shape is
    missing/mismatched, or an unpruned score is NaN. Inputs are not modified.
    """
    out = {name: np.array(mask, dtype=bool) for name, mask in masks.items()}
    for layer, k in keep.items():
        if layer not in masks or layer not in scores:
            raise ConfigError(
                f"Layer {layer!r} is in keep but not in "
                f"{'masks' if layer not in masks else 'scores'}."
            )
        mask, score = out[layer], np.asarray(scores[layer], dtype=np.float64)
        if score.shape != mask.shape:
            raise ConfigError(
                f"Layer {layer!r}: scores have shape {score.shape} "
                f"but the mask has shape {mask.shape}."
            )
        candidates = np.flatnonzero(mask)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ConfigError(f"Layer {layer!r}: keep must be an integer >= 0, got {k!r}.")
        if k > candidates.size:
            raise ConfigError(
                f"Layer {layer!r}: cannot keep {k} weights, only {candidates.size} "
                f"of {mask.size} are unpruned (pruning never revives weights)."
            )
        candidate_scores = score.ravel()[candidates]
        if np.isnan(candidate_scores).any():
            raise ConfigError(f"Layer {layer!r}: scores contain NaN (non-finite weights?).")
        # Stable sort of candidates (ascending index) by descending score.
        order = np.argsort(-candidate_scores, kind="stable")
        new = np.zeros(mask.size, dtype=bool)
        new[candidates[order[:k]]] = True
        out[layer] = new.reshape(mask.shape)
    return out


def prune_level(
    scores: Weights, masks: Masks, rates: Mapping[str, float], level: int
) -> Masks:
    """``prune`` to the ``level``-th round: keep ``keep_count(size, rates[layer], level)``.

    ``rates``: per-round fraction per layer (e.g. from ``default_rates``); layers not in
    ``rates`` are unchanged. Counts come from each layer's total size, so calling this
    with level 1, 2, ... in turn follows the closed form exactly.
    """
    missing = [layer for layer in rates if layer not in masks]
    if missing:
        raise ConfigError(f"Layers {missing} have a rate but no mask.")
    keep = {
        layer: keep_count(int(np.size(masks[layer])), rate, level)
        for layer, rate in rates.items()
    }
    return prune(scores, masks, keep)


def prune_global(scores: Weights, masks: Masks, keep: int, layers) -> Masks:
    """New masks keeping exactly ``keep`` weights over the ``layers`` together.

    The kept weights are the ``keep`` unpruned weights (mask True) with the largest
    scores among all of ``layers``; already-pruned weights stay pruned; ties are broken
    by the order of ``layers``, then by flat (C-order) index, lower first. Layers not in
    ``layers`` are copied unchanged. ConfigError for an unknown layer, a shape mismatch,
    ``keep`` above the unpruned count or negative, or a NaN among unpruned scores.
    Inputs are not modified.
    """
    layers = list(layers)
    out = {name: np.array(mask, dtype=bool) for name, mask in masks.items()}
    candidates, values = [], []
    for layer in layers:
        if layer not in masks or layer not in scores:
            raise ConfigError(f"Layer {layer!r} is pruned but not in {'masks' if layer not in masks else 'scores'}.")
        score = np.asarray(scores[layer], dtype=np.float64)
        if score.shape != out[layer].shape:
            raise ConfigError(f"Layer {layer!r}: scores have shape {score.shape} but the mask has shape "
                              f"{out[layer].shape}.")
        index = np.flatnonzero(out[layer])
        candidates.append(index)
        values.append(score.ravel()[index])
    total = int(sum(c.size for c in candidates))
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 0:
        raise ConfigError(f"keep must be an integer >= 0, got {keep!r}.")
    if keep > total:
        raise ConfigError(f"Cannot keep {keep} weights: only {total} are unpruned in layers {layers} "
                          "(pruning never revives weights).")
    flat = np.concatenate(values) if values else np.zeros(0)
    if np.isnan(flat).any():
        raise ConfigError("Scores contain NaN (non-finite weights?).")
    # Stable sort by descending score: layer order, then flat index, breaks ties.
    chosen = np.zeros(flat.size, dtype=bool)
    chosen[np.argsort(-flat, kind="stable")[:keep]] = True
    start = 0
    for layer, index in zip(layers, candidates):
        new = np.zeros(out[layer].size, dtype=bool)
        new[index[chosen[start:start + index.size]]] = True
        out[layer] = new.reshape(out[layer].shape)
        start += index.size
    return out


def prune_global_level(scores: Weights, masks: Masks, rate: float, level: int, ignore=()) -> Masks:
    """``prune_global`` to the ``level``-th round over every layer of ``masks`` but ``ignore``:
    keep ``keep_count(total, rate, level)`` of their ``total`` weights (see module docstring)."""
    unknown = [name for name in ignore if name not in masks]
    if unknown:
        raise ConfigError(f"Layers to ignore {unknown} are not prunable layers of the model. "
                          f"Valid layers: {', '.join(masks)}.")
    layers = [name for name in masks if name not in set(ignore)]
    if not layers:
        raise ConfigError("Global pruning has no layer left to prune: every prunable layer is ignored.")
    total = sum(int(np.size(masks[name])) for name in layers)
    return prune_global(scores, masks, keep_count(total, rate, level), layers)


def ones_like(weights: Weights) -> Masks:
    """All-True masks with the shape of each kernel in ``weights`` (nothing pruned)."""
    return {name: np.ones(np.shape(w), dtype=bool) for name, w in weights.items()}


def union(a: Masks, b: Masks) -> Masks:
    """Element-wise OR of two masks with the same layers and shapes (else ConfigError)."""
    check_same_layers(a, b, "first masks", "second masks")
    return {name: np.logical_or(a[name], b[name]) for name in a}


def intersection(a: Masks, b: Masks) -> Masks:
    """Element-wise AND of two masks with the same layers and shapes (else ConfigError)."""
    check_same_layers(a, b, "first masks", "second masks")
    return {name: np.logical_and(a[name], b[name]) for name in a}


def density(masks: Masks) -> dict[str, float]:
    """Fraction of kept weights per layer, ``{layer: float in [0, 1]}`` (empty layer: 1.0)."""
    return {
        name: float(np.count_nonzero(m)) / np.size(m) if np.size(m) else 1.0
        for name, m in masks.items()
    }


def overall_density(masks: Masks) -> float:
    """Fraction of kept weights over all layers together (weighted by layer size)."""
    total = sum(int(np.size(m)) for m in masks.values())
    if total == 0:
        raise ConfigError("overall_density needs at least one non-empty mask.")
    return sum(int(np.count_nonzero(m)) for m in masks.values()) / total
