"""The maths of instability analysis: pure functions on numpy arrays and ``{"layer/var": array}`` dicts.

Frankle, Dziugaite, Roy & Carbin (2020), "Linear Mode Connectivity and the Lottery Ticket
Hypothesis": two copies of one network, trained from the same weights on different samples of SGD
noise (here: different data orders), are compared along the straight line between their final
weights. The paper's instability of the network is, in our words, the *error barrier height* on
that line: the highest error met on the path minus the mean of the two endpoints' errors; the
network is "stable" (the two copies are linearly mode-connected) when it is about zero. The path
is evaluated at 30 evenly spaced points by default. Where a yes/no answer is wanted we call a
network stable below 2 percentage points (``STABLE_BELOW``); we could not retrieve the paper's
exact wording of its threshold here, so treat that number as our convention.
"""

import numpy as np

Weights = dict[str, np.ndarray]

STABLE_BELOW = 2.0  # percentage points of error: the threshold for "stable" used in the reports


def alphas(n: int) -> np.ndarray:
    """``n`` interpolation coefficients evenly spaced in [0, 1], both endpoints included (float64, (n,))."""
    n = int(n)
    if n < 2:
        raise ValueError(f"alphas needs n >= 2 (both endpoints). Received: n={n}")
    return np.linspace(0.0, 1.0, n)


def interpolate(w1: Weights, w2: Weights, alpha: float) -> Weights:
    """``(1 - alpha) * w1 + alpha * w2`` for every float variable of two weight dicts with the same keys.

    Args:
        w1, w2: ``{"layer/var": array}`` (``supermask.masks.get_weights``); masks are not weights
            (they stay on the model, shared by both endpoints), so the path keeps them.
        alpha: 0 gives ``w1`` exactly, 1 gives ``w2`` exactly.

    Integer and boolean variables (seed-generator states, counters) are taken from ``w1`` unchanged;
    every float variable keeps its dtype. ``ValueError`` if the keys or shapes differ.
    """
    if set(w1) != set(w2):
        raise ValueError(f"The two networks have different variables: only in the first "
                         f"{sorted(set(w1) - set(w2))}, only in the second {sorted(set(w2) - set(w1))}")
    alpha = float(alpha)
    out = {}
    for key, a in w1.items():
        a, b = np.asarray(a), np.asarray(w2[key])
        if a.shape != b.shape:
            raise ValueError(f"Variable {key!r} has shape {a.shape} in the first network and {b.shape} in the second")
        if not np.issubdtype(a.dtype, np.floating):
            out[key] = a.copy()
        elif alpha == 0.0:
            out[key] = a.copy()
        elif alpha == 1.0:
            out[key] = b.astype(a.dtype)
        else:
            mixed = (1.0 - alpha) * a.astype(np.float64) + alpha * b.astype(np.float64)
            out[key] = mixed.astype(a.dtype)
    return out


def instability(errors) -> float:
    """The error barrier height of one path: ``max(errors) - (errors[0] + errors[-1]) / 2``.

    ``errors``: the errors at the path's points, ``errors[0]`` at alpha = 0 (the first copy) and
    ``errors[-1]`` at alpha = 1 (the second), in any one unit: the result is in the same unit
    (the runs use percent, so instability is in percentage points). Never negative.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 1 or errors.size < 2:
        raise ValueError(f"instability needs the errors of a path of >= 2 points. Received shape {errors.shape}")
    return float(max(errors.max() - 0.5 * (errors[0] + errors[-1]), 0.0))


def copy_seeds(seed: int, k: int) -> tuple[int, int]:
    """The data-order seeds of the two copies split off at iteration ``k`` of trial ``seed``.

    ``np.random.SeedSequence([seed, k, c])`` for copy c = 1, 2 (its first 32-bit word): distinct
    from each other, from the parent's order (seeded by ``seed`` itself) and across k, and the same
    on every backend and in every rerun.
    """
    return tuple(int(np.random.SeedSequence([int(seed), int(k), c]).generate_state(1)[0]) for c in (1, 2))

