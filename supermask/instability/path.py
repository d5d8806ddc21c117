"""Errors along the linear path between two networks: one model, its weights set at every point.

The model is built and compiled once; a point only assigns interpolated weights (same shapes every
time, so nothing is retraced) and runs forward passes in batches (``init_sweep.evaluation.evaluate``,
numpy reductions). With ``bn="recompute"`` every BatchNormalization layer's moving statistics are
re-estimated at each point before it is evaluated (``recompute_batchnorm``).
"""

from dataclasses import dataclass

import keras
import numpy as np

from supermask.convert import walk
from supermask.data import Dataset
from supermask.engine import EVAL_BATCH_SIZE
from supermask.errors import ConfigError
from supermask.init_sweep.evaluation import evaluate
from supermask.instability.core import alphas as alpha_grid
from supermask.instability.core import instability, interpolate
from supermask.masks import get_weights, set_weights
from supermask.settings.instability import BN_MODES, MIN_POINTS, SPLITS

BN_EXAMPLES = 5000  # training examples that re-estimate the BatchNorm statistics at a point (bn="recompute")


@dataclass(frozen=True)
class Path:
    """One evaluated path: ``alphas`` (P,), ``errors`` (P,) in percent, ``losses`` (P,) in nats (mean
    cross-entropy), ``instability`` in percentage points (``core.instability`` of ``errors``)."""

    alphas: np.ndarray
    errors: np.ndarray
    losses: np.ndarray
    instability: float


def batchnorm_layers(model):
    """The model's ``keras.layers.BatchNormalization`` layers, nested ones included, in model order."""
    return [layer for _, layer in walk(model) if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_batchnorm(model, x, batch_size=EVAL_BATCH_SIZE):
    """Re-estimate every BatchNormalization layer's moving mean and variance from ``x``.

    The statistics are reset (mean 0, variance 1), then the model runs in training mode on the
    full batches of ``x`` (at least one) with each layer's momentum set so that its moving
    statistics become the plain average of the batches' statistics (momentum ``i / (i + 1)``
    before batch ``i``, as PyTorch's ``momentum=None``); the momenta are restored after. Nothing
    else changes: the weights are not trained. Returns the number of batches used.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, np.float32))
    momenta = [layer.momentum for layer in layers]
    batches = max(1, len(x) // batch_size)
    try:
        for i in range(batches):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(x[i * batch_size:(i + 1) * batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return batches


def split_arrays(data, split, train_examples=None):
    """``(x, y)`` of ``split`` (test or train) of a ``Dataset``; the train split cut to its first
    ``train_examples``. ``data`` may also be ``(x, y)`` arrays, used whatever the split."""
    if not isinstance(data, Dataset):
        x, y = data
        return np.asarray(x), np.asarray(y)
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}. Received: split={split!r}")
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if split == "train" and train_examples:
        x, y = x[:train_examples], y[:train_examples]
    if not len(x):
        raise ConfigError(f"The {split} split is empty: nothing to evaluate the path on.")
    return x, y


def evaluate_path(model, weights_a, weights_b, arrays, points=30, bn="interpolate", bn_x=None,
                  batch_size=EVAL_BATCH_SIZE):
    """``{split: Path}`` of the line from ``weights_a`` (alpha 0) to ``weights_b`` (alpha 1).

    Args:
        model: a built Keras model holding the masks both networks share (they stay on the path).
        weights_a, weights_b: ``{"layer/var": array}`` (``masks.get_weights``) of the two networks.
        arrays: ``{split: (x, y)}`` to evaluate at each point.
        points: P >= 3 points, ``core.alphas(P)``.
        bn: ``"interpolate"`` (BatchNorm moving statistics interpolated like the other variables) or
            ``"recompute"`` (re-estimated at each point from ``bn_x``, ``recompute_batchnorm``).
    The model's weights are restored afterwards.
    """
    if bn not in BN_MODES:
        raise ConfigError(f"bn must be one of {', '.join(BN_MODES)}. Received: bn={bn!r}")
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < MIN_POINTS:
        raise ConfigError(f"points must be an integer >= {MIN_POINTS}. Received: points={points!r}")
    try:
        interpolate(weights_a, weights_b, 0.0)
    except ValueError as exc:
        raise ConfigError(f"The two networks must have the same architecture: {exc}.") from None
    if bn == "recompute" and bn_x is None:
        raise ConfigError("bn='recompute' needs training examples to re-estimate the BatchNorm statistics (bn_x).")
    grid = alpha_grid(points)
    saved = get_weights(model)
    values = {split: np.empty((len(grid), 2)) for split in arrays}
    try:
        for i, alpha in enumerate(grid):
            set_weights(model, interpolate(weights_a, weights_b, alpha))
            if bn == "recompute":
                recompute_batchnorm(model, bn_x)
            for split, (x, y) in arrays.items():
                values[split][i] = evaluate(model, x, y, batch_size)
    finally:
        set_weights(model, saved)
    out = {}
    for split, v in values.items():
        errors = 100.0 * (1.0 - v[:, 1])
        out[split] = Path(grid, errors, v[:, 0], instability(errors))
    return out


def linear_path(model, weights_a, weights_b, data, points=30, split="test", bn="interpolate",
                train_examples=None, batch_size=EVAL_BATCH_SIZE):
    """The errors on the linear path ``(1 - a) * weights_a + a * weights_b`` and its instability.

    Works on any Keras model and two of its weight dicts (``supermask.masks.get_weights``), e.g.
    two copies trained from one start on different data orders::

        path = instability.linear_path(model, get_weights(copy_a), get_weights(copy_b), data, points=30)
        path.alphas, path.errors, path.instability   # errors in %, instability in percentage points

    ``data``: a ``supermask.data.Dataset`` (``split`` "test" or "train", the train split cut to
    ``train_examples``) or ``(x, y)`` arrays. ``bn``: see ``evaluate_path``; ``"recompute"``
    re-estimates the statistics from the first ``BN_EXAMPLES`` training examples (the given ``x``
    for arrays). Returns a ``Path``.
    """
    x, y = split_arrays(data, split, train_examples)
    bn_x = (data.x_train[:BN_EXAMPLES] if isinstance(data, Dataset) else x[:BN_EXAMPLES]) if bn == "recompute" else None
    return evaluate_path(model, weights_a, weights_b, {split: (x, y)}, points, bn, bn_x, batch_size)[split]
