"""Mask criteria: per-weight scores computed from a layer's initial and final weights.

A criterion turns ``(w_init, w_final)`` for one layer (two arrays of the same shape,
dense kernels ``(in, out)`` or conv kernels ``(kh, kw, cin, cout)``, in weight units)
into a float64 score array of that shape. Pruning keeps the weights with the LARGEST
scores (see ``supermask.pruning.prune``), so e.g. ``small_final`` is ``-|w_final|``.

Semantics follow Zhou, Lan, Liu & Yosinski (2019), "Deconstructing Lottery Tickets",
reference code github.com/uber-research/deconstructing-lottery-tickets, file
``get_weight_init.py`` (function ``main``, one ``elif args.method == ...`` branch per
criterion). Differences from that code are deliberate and documented per function:

* Ties are broken deterministically by ``prune`` (lower flat index first), not randomly,
  except by the sign-aware criteria (below), where the random tie-break is the point.
* ``large_init_large_final`` / ``small_init_small_final``: the reference bisects for a
  common percentile ``p`` and keeps weights above the ``p``-th percentile of BOTH
  magnitudes (``bsearch_quadrant_threshold``). Ranking by the smaller of the two
  within-layer ranks gives the same order and lets ``prune`` hit the count exactly.
* Sign-aware criteria (``*_same_sign`` / ``*_diff_sign``): as in the reference, a
  weight the sign condition excludes scores exactly 0 and the base score (``|w_final|``
  or ``|w_final| - |w_init|``) is kept for the others; every tie (in practice the
  excluded weights, all at 0) is broken at random by ``rng``, so when a layer must keep
  more weights than the criterion includes, the rest are filled by a random choice of
  excluded weights, not by their base score. For ``magnitude_increase_*`` the 0 ranks
  excluded weights ABOVE included weights that shrank (negative base score), as in the
  reference. The result is returned as a rank (0 = pruned first), so ``prune`` keeps
  exactly the target count and the random tie-break is reproducible from ``rng``.

Every criterion has the signature ``fn(w_init, w_final, rng, mask=None)``. ``rng`` (a
``numpy.random.Generator``) is used by ``random`` and the sign-aware criteria only.
``mask`` (bool, same shape, True = still unpruned) is used only by the rank-based joint
criteria, which rank among unpruned weights like the reference does; other criteria
ignore it.
"""

import inspect
import re
from typing import Callable, Optional

import numpy as np

from supermask.errors import ConfigError
from supermask.specs import import_object, source_digest

Weights = dict[str, np.ndarray]
Criterion = Callable[..., np.ndarray]


def _abs(x: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(x, dtype=np.float64))


def large_final(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Score ``|w_final|`` (float64, same shape): keep large final magnitudes (LT default)."""
    return _abs(w_final)


def small_final(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Score ``-|w_final|`` (float64, same shape): keep small final magnitudes."""
    return -_abs(w_final)


def large_init(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Score ``|w_init|`` (float64, same shape): keep large initial magnitudes."""
    return _abs(w_init)


def small_init(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Score ``-|w_init|`` (float64, same shape): keep small initial magnitudes."""
    return -_abs(w_init)


def magnitude_increase(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Score ``|w_final| - |w_init|`` (float64, weight units): keep weights that grew most."""
    return _abs(w_final) - _abs(w_init)


def movement(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Score ``|w_final - w_init|`` (float64, weight units): keep weights that moved most."""
    return np.abs(np.asarray(w_final, np.float64) - np.asarray(w_init, np.float64))


def random_scores(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Score i.i.d. uniform [0, 1) draws from ``rng`` (float64, same shape): a random mask."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            "Criterion 'random' needs an explicit numpy.random.Generator as rng, "
            f"got {type(rng).__name__}."
        )
    return rng.random(np.shape(w_final))


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ascending competition rank (number of strictly smaller values), as float64."""
    return np.searchsorted(np.sort(values), values, side="left").astype(np.float64)


def _joint_rank(a: np.ndarray, b: np.ndarray, mask) -> np.ndarray:
    """Score "large in both ``a`` and ``b``": ``min(rank_a, rank_b) + max(rank_a, rank_b) / n``.

    Ranks are taken among the ``n`` unpruned weights (``mask`` True, all if None);
    pruned weights score -1, below every unpruned one. Keeping the top-k by the
    smaller rank is keeping the weights above a common percentile of both ``a`` and
    ``b`` (reference ``bsearch_quadrant_threshold``); the larger rank (< 1 after
    dividing by n) only breaks ties.
    """
    live = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    score = np.full(a.shape, -1.0)
    n = int(live.sum())
    if n:
        ra, rb = _ranks(a[live]), _ranks(b[live])
        score[live] = np.minimum(ra, rb) + np.maximum(ra, rb) / n
    return score


def large_init_large_final(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Keep weights large both at init and at the end (float64 rank score, same shape).

    Rank-based, not value-based: ``|w_init|`` and ``|w_final|`` live on different
    scales, so the reference compares percentiles. See ``_joint_rank``.
    """
    return _joint_rank(_abs(w_init), _abs(w_final), mask)


def small_init_small_final(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """Keep weights small both at init and at the end (float64 rank score, same shape)."""
    return _joint_rank(-_abs(w_init), -_abs(w_final), mask)


def _zero_excluded(base: np.ndarray, include: np.ndarray, rng, name: str) -> np.ndarray:
    """Reference rule of the sign-aware criteria, as a float64 rank score (same shape).

    Score ``base`` where ``include``, exactly 0 elsewhere (reference: ``cumulative_helped[
    excluded] = 0``); weights are then ranked by that score, ascending, with ties broken
    by uniform draws from ``rng`` (reference: ``np.lexsort((np.random.random(n), score))``).
    Returns each weight's position in that order (0 .. n-1), so the top-k of the result
    are the reference's kept weights and every count stays exact.
    """
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"Criterion {name!r} breaks ties at random and needs an explicit "
            f"numpy.random.Generator as rng, got {type(rng).__name__}."
        )
    score = np.where(include, base, 0.0).ravel()
    order = np.lexsort((rng.random(score.size), score))
    rank = np.empty(score.size, dtype=np.float64)
    rank[order] = np.arange(score.size, dtype=np.float64)
    return rank.reshape(np.shape(base))


def _same_sign(w_init, w_final) -> np.ndarray:
    """True where ``sign(w_init) == sign(w_final)`` (``np.sign``, so 0 is its own sign)."""
    return np.sign(np.asarray(w_init)) == np.sign(np.asarray(w_final))


def large_final_same_sign(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """``|w_final|`` among weights whose sign did not change; sign-flipped ones score 0.

    Zhou et al.'s best supermask criterion. Sign-flipped weights are only kept when
    there are fewer same-sign weights than the target count, chosen at random by
    ``rng`` (see ``_zero_excluded``).
    """
    return _zero_excluded(_abs(w_final), _same_sign(w_init, w_final), rng, "large_final_same_sign")


def large_final_diff_sign(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """``|w_final|`` among weights whose sign changed; same-sign ones score 0 (random fill)."""
    return _zero_excluded(_abs(w_final), ~_same_sign(w_init, w_final), rng, "large_final_diff_sign")


def magnitude_increase_same_sign(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """``|w_final| - |w_init|`` among same-sign weights; sign-flipped ones score 0 (random fill)."""
    return _zero_excluded(magnitude_increase(w_init, w_final), _same_sign(w_init, w_final), rng,
                          "magnitude_increase_same_sign")


def magnitude_increase_diff_sign(w_init, w_final, rng=None, mask=None) -> np.ndarray:
    """``|w_final| - |w_init|`` among sign-flipped weights; same-sign ones score 0 (random fill)."""
    return _zero_excluded(magnitude_increase(w_init, w_final), ~_same_sign(w_init, w_final), rng,
                          "magnitude_increase_diff_sign")


CRITERIA: dict[str, Criterion] = {
    "large_final": large_final,
    "small_final": small_final,
    "large_init": large_init,
    "small_init": small_init,
    "large_init_large_final": large_init_large_final,
    "small_init_small_final": small_init_small_final,
    "magnitude_increase": magnitude_increase,
    "movement": movement,
    "random": random_scores,
    "large_final_same_sign": large_final_same_sign,
    "large_final_diff_sign": large_final_diff_sign,
    "magnitude_increase_same_sign": magnitude_increase_same_sign,
    "magnitude_increase_diff_sign": magnitude_increase_diff_sign,
}


BUILTIN = tuple(CRITERIA)  # the criteria above, in the reference's order ("all" of an init sweep)

# Criteria whose scores are values in weight units (or uniform draws), so comparable across
# layers: global pruning ranks all layers' scores together. The joint and sign-aware criteria
# score by rank within a layer, which means nothing across layers of different sizes.
GLOBAL_CRITERIA = ("large_final", "small_final", "large_init", "small_init", "magnitude_increase", "movement",
                   "random")
# Criteria that read only the final weights: ``supermask.prune`` needs no reference weights for them.
FINAL_ONLY = ("large_final", "small_final", "random")
_COMPARABLE = set(GLOBAL_CRITERIA)
_USES_INIT = set(BUILTIN) - set(FINAL_ONLY)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


# --- your own criteria -----------------------------------------------------------------
def register(name, *, comparable_across_layers=False, uses_init=True):
    """Decorator: register ``fn(w_init, w_final, rng=None, mask=None) -> scores`` as criterion ``name``.

    ``fn`` gets what the built-ins get (one layer's kernels at reset and at the end of training,
    the level's ``numpy.random.Generator``, the currently unpruned weights) and returns a score per
    weight, kernel-shaped; the largest scores are kept. ``comparable_across_layers``: its scores mean
    the same in every layer (weight units, uniform draws), so it may prune globally;
    ``uses_init=False``: it reads ``w_final`` only (``supermask.prune`` then needs no reference).
    A registered name is usable wherever a built-in is (``criterion="name"``; an experiment's
    hash holds the name and, for your own criteria, a SHA-256 of the function's source,
    ``fingerprint``). Registering a name again replaces your earlier function (a re-run notebook
    cell); a built-in name is refused. On the command line, name the function itself:
    ``--criterion package.module:function`` (imported in every process that needs it)::

        @criteria.register("large_final_abs_movement", comparable_across_layers=True)
        def score(w_init, w_final, rng=None, mask=None):
            return np.abs(w_final) + np.abs(w_final - w_init)
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"A criterion name is letters, digits, _ . - (not starting with a digit). Received: "
                          f"{name!r}")
    if name in BUILTIN:
        raise ConfigError(f"{name!r} is a built-in criterion; register yours under another name.")

    def decorate(fn):
        _add(name, fn, comparable_across_layers, uses_init)
        fn.supermask_criterion = {"comparable_across_layers": bool(comparable_across_layers),
                                  "uses_init": bool(uses_init)}
        return fn

    return decorate


def _add(name, fn, comparable, uses_init):
    if not callable(fn):
        raise ConfigError(f"Criterion {name!r} must be a function (w_init, w_final, rng=None, mask=None). "
                          f"Received: {type(fn).__name__}")
    try:
        inspect.signature(fn).bind(None, None, None, None)
    except TypeError:
        raise ConfigError(f"Criterion {name!r} must take (w_init, w_final, rng=None, mask=None), the arguments "
                          "every criterion gets.") from None
    except ValueError:  # a builtin without a signature: called as it is
        pass
    CRITERIA[name] = fn
    (_COMPARABLE.add if comparable else _COMPARABLE.discard)(name)
    (_USES_INIT.add if uses_init else _USES_INIT.discard)(name)


def unregister(name):
    """Remove your criterion ``name`` (built-ins stay); no error if it is not registered."""
    if name not in BUILTIN:
        CRITERIA.pop(name, None)
        _COMPARABLE.discard(name)
        _USES_INIT.discard(name)


def is_comparable(name: str) -> bool:
    """Whether criterion ``name``'s scores can be ranked across layers (global pruning)."""
    get_criterion(name)
    return name in _COMPARABLE


def uses_init(name: str) -> bool:
    """Whether criterion ``name`` reads the initial (reset) weights."""
    get_criterion(name)
    return name in _USES_INIT


def fingerprint(name: str) -> Optional[str]:
    """None for a built-in; for your own criterion a SHA-256 of its function's source (else of its
    code), so an experiment whose criterion changed gets a new folder instead of joining the old one."""
    fn = get_criterion(name)
    return None if name in BUILTIN else source_digest(fn)


def name_of(criterion) -> str:
    """The registry name of ``criterion``: a name as it is (checked), or a function, registered under
    ``"module:qualname"`` (with its ``register`` flags, if it has them) the first time."""
    if not callable(criterion):
        get_criterion(criterion)
        return criterion
    for name, fn in CRITERIA.items():
        if fn is criterion:
            return name
    name = f"{getattr(criterion, '__module__', None) or 'python'}:{getattr(criterion, '__qualname__', 'criterion')}"
    flags = getattr(criterion, "supermask_criterion", {})
    _add(name, criterion, flags.get("comparable_across_layers", False), flags.get("uses_init", True))
    return name


def checked(name: str) -> str:
    """``name`` if it names a criterion (``get_criterion``), else ConfigError: the flag parser's check."""
    get_criterion(name)
    return name


def check_global(name: str) -> None:
    """ConfigError unless criterion ``name`` gives scores comparable across layers (``GLOBAL_CRITERIA``,
    or your own registered with ``comparable_across_layers=True``)."""
    if not is_comparable(name):
        raise ConfigError(f"Criterion {name!r} scores weights by their rank within a layer, which cannot be "
                          f"compared across layers, so it cannot prune globally. Use --pruning layerwise, or "
                          f"one of: {', '.join(sorted(_COMPARABLE, key=list(CRITERIA).index))}.")


def get_criterion(name: str) -> Criterion:
    """The criterion function registered as ``name``, or ``package.module:function`` imported (and
    registered under that name, with the flags of its ``register`` decorator if it has one);
    ConfigError listing the valid names."""
    fn = CRITERIA.get(name) if isinstance(name, str) else None
    if fn is not None:
        return fn
    if isinstance(name, str) and ":" in name:
        fn = import_object(name, "criterion")
        flags = getattr(fn, "supermask_criterion", {})
        _add(name, fn, flags.get("comparable_across_layers", False), flags.get("uses_init", True))
        return fn
    raise ConfigError(f"Unknown criterion {name!r}. Valid criteria: {', '.join(CRITERIA)}, or your own as "
                      "package.module:function.")


def check_same_layers(a: dict, b: dict, a_name: str, b_name: str) -> None:
    """Raise ConfigError unless ``a`` and ``b`` have the same keys and per-key shapes."""
    if set(a) != set(b):
        missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise ConfigError(
            f"{a_name} and {b_name} must have the same layers; "
            f"only in {a_name}: {missing}, only in {b_name}: {extra}."
        )
    for layer in a:
        sa, sb = np.shape(a[layer]), np.shape(b[layer])
        if sa != sb:
            raise ConfigError(
                f"Layer {layer!r}: {a_name} has shape {sa} but {b_name} has shape {sb}."
            )


def compute_scores(
    name: str,
    init: Weights,
    final: Weights,
    rng: Optional[np.random.Generator] = None,
    masks: Optional[dict[str, np.ndarray]] = None,
) -> Weights:
    """Score every layer with criterion ``name``: ``{layer: float64 array, kernel shape}``.

    ``init`` and ``final`` map layer name -> kernel (same keys, same shapes, else
    ConfigError naming the layer and both shapes). ``rng`` is required for ``random`` and
    the sign-aware criteria (layers draw from it in ``init``'s order).
    ``masks`` (optional, same layers) marks the currently unpruned weights; only the
    rank-based joint criteria use it. Inputs are not modified.
    """
    fn = get_criterion(name)
    check_same_layers(init, final, "init", "final")
    if masks is not None:
        check_same_layers(init, masks, "init", "masks")
    return {
        layer: np.asarray(
            fn(init[layer], final[layer], rng, None if masks is None else masks[layer]),
            dtype=np.float64,
        )
        for layer in init
    }
