"""The init sweep's schedule and ranking maths: pure functions on names, counts and numpy arrays.

A layer group ``k`` keeps ``prune_base[k] ** power`` of each of its kernels; layer cutoffs
count trainable variables as the reference does (kernel + bias = 2 per layer); a point's mask
keeps the best-ranked weights of each layer (see ``supermask.init_sweep``).
"""

import zlib

import numpy as np

from supermask import pruning
from supermask.errors import ConfigError
from supermask.seeds import check_seed
from supermask.settings.init_sweep import bases_list, cutoff_settings

Weights = dict[str, np.ndarray]
Masks = dict[str, np.ndarray]


def join(values) -> str:
    """``(4, 6)`` -> ``"4,6"``: how cutoffs and bases are spelled in rows and messages."""
    return ",".join(str(v) for v in values)


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


def kind_rates(kinds: dict[str, str]) -> dict[str, float]:
    """``{layer: rate}`` for a model without a paper's table (your own, resnet20, vgg16), from its
    prunable layers' kinds (``{layer: "conv" | "dense"}`` in model order): the lottery's per-kind
    defaults (``pruning.KIND_RATES``: conv 0.1, dense 0.2, the last prunable layer 0.1), as
    ``supermask.lottery`` prunes such a model layer-wise."""
    return {key: pruning.KIND_RATES[role] for key, role in pruning.layer_roles(kinds).items()}


def check_cutoffs(cutoffs, layers: list[str], num_bases: int) -> None:
    """ConfigError unless ``cutoffs`` is a valid setting for ``layers`` and the bases.

    Valid: strictly increasing even integers (2 variables, kernel and bias, per layer)
    ending at ``2 * len(layers)``, at most ``num_bases`` groups.
    """
    n = 2 * len(layers)
    if (not cutoffs or any(c <= 0 or c % 2 for c in cutoffs)
            or list(cutoffs) != sorted(set(cutoffs)) or cutoffs[-1] != n):
        raise ConfigError(
            f"Layer cutoffs count trainable variables as the reference does (kernel + bias = 2 per layer; layers "
            f"{', '.join(layers)}), so they must be increasing even numbers ending at {n}, e.g. "
            f"{join(range(2, n + 1, 2)[-2:])}. Received: layer_cutoffs={join(cutoffs)}"
        )
    if len(cutoffs) > num_bases:
        raise ConfigError(
            f"Layer cutoffs {join(cutoffs)} make {len(cutoffs)} groups: give one base per group (--prune-base). "
            f"Received: {num_bases} prune base(s)"
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


def resolve_schedule(model_name, layers, prune_base=None, layer_cutoffs=None, rates=None):
    """``(bases, [cutoff settings])`` with the model's reference defaults filled in
    (``rates``: see ``default_schedule``). ``prune_base`` and ``layer_cutoffs`` as
    ``InitSweepConfig`` holds them, or in any spelling it accepts.

    Without cutoffs: the default setting if the number of bases matches it (or no
    bases given), a single group of all layers if one base is given.
    """
    default_bases, default_cutoffs = default_schedule(model_name, layers, rates)
    bases = default_bases if prune_base is None else bases_list(prune_base)
    if layer_cutoffs is None:
        if len(bases) == len(default_cutoffs):
            settings = [default_cutoffs]
        elif len(bases) == 1:
            settings = [(2 * len(layers),)]
        else:
            raise ConfigError(
                f"Model {model_name!r} groups its layers in {len(default_cutoffs)} by default (cutoffs "
                f"{join(default_cutoffs)}): give 1 or that many prune bases, or pass --layer-cutoffs. "
                f"Received: {len(bases)} prune bases ({join(bases)})"
            )
    else:
        settings = list(cutoff_settings(layer_cutoffs))
    for cutoffs in settings:
        check_cutoffs(cutoffs, layers, len(bases))
    return bases, settings


def keep_counts(sizes: dict[str, int], rates: dict[str, float], power: int) -> dict[str, int]:
    """Weights (a count) each layer keeps at ``power``: ``pruning.keep_count(size, rate, power)``."""
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
            raise ConfigError(f"Scores must be numbers; are the weights finite? Received: NaN scores in layer "
                              f"{layer!r}")
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
    """The generator of one point: seeded by ``seed`` and the CRC-32 of each key's text (e.g.
    criterion, action, cutoffs, power), so every point draws the same numbers on its own."""
    return np.random.default_rng([check_seed(seed), *(zlib.crc32(str(k).encode()) for k in keys)])
