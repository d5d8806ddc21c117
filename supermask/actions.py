"""Mask-1 and Mask-0 actions: the starting weights of the next pruning level.

Zhou et al. (2019) split "what happens to a weight" into the Mask-1 action, applied to
kept weights (mask True), and the Mask-0 action, applied to pruned weights (mask
False). Reference: github.com/uber-research/deconstructing-lottery-tickets,
``train_lottery.py`` (``--exp`` = Mask-1, ``--model_type`` = Mask-0; see the ``if
args.exp == ...`` and ``if args.model_type == ...`` blocks in ``main``) and
``masked_layers.py`` (``FreezeDense``: ``kernel * mask + (1 - mask) * frozen_value``).

Layer contract (``supermask.layers``): a masked layer computes ``kernel * mask``; with
``freeze_pruned`` it uses the stored kernel value, frozen, at pruned positions. So
``apply_actions`` returns full kernels holding the Mask-1 values at kept positions and
the Mask-0 values (0 for ``mask``) at pruned positions.

Shapes: kernels are dense ``(in, out)`` or conv ``(kh, kw, cin, cout)``; values are in
weight units. All randomness comes from the ``rng`` argument (``np.random.Generator``).
"""

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from supermask.criteria import check_same_layers
from supermask.errors import ConfigError

Weights = dict[str, np.ndarray]
Masks = dict[str, np.ndarray]

# Standard deviation of a standard normal truncated to [-2, 2]; Keras divides the
# target stddev by it so that the truncated draw has the intended std.
_TRUNCATED_STD = 0.87962566103423978


def _fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) like Keras: dense (in, out); conv (..., cin, cout) x receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_std(shape) -> float:
    """Std (weight units) of the Glorot-normal init for a kernel: ``sqrt(2 / (fan_in + fan_out))``.

    Dense ``(in, out)``: fans are in, out. Conv ``(kh, kw, cin, cout)``: fan_in =
    kh*kw*cin, fan_out = kh*kw*cout. As in Keras, the fan average is floored at 1.
    """
    fan_in, fan_out = _fans(tuple(int(d) for d in shape))
    return math.sqrt(1.0 / max(1.0, (fan_in + fan_out) / 2.0))


def glorot_normal(shape, rng: np.random.Generator) -> np.ndarray:
    """A fresh Glorot-normal draw (float64 array of ``shape``), as Keras's ``GlorotNormal``.

    Keras draws a normal with ``stddev = glorot_std(shape) / 0.8796...`` and discards
    and redraws values more than 2 stddev from 0; the resulting std is
    ``glorot_std(shape)``. We reproduce that by rejection: redraw until all |z| <= 2.
    """
    _need_rng(rng, "glorot_normal")
    shape = tuple(int(d) for d in shape)
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    return z * (glorot_std(shape) / _TRUNCATED_STD)


def _need_rng(rng, what: str) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"{what} is random and needs an explicit numpy.random.Generator as rng, "
            f"got {type(rng).__name__}."
        )


# --- Mask-1 actions: fn(w_init, mask, rng) -> array whose KEPT positions are used. ---


def _none(w_init, mask, rng):
    """Reset kept weights to their initial values (the original lottery ticket)."""
    return w_init.copy()


def _random_reinit(w_init, mask, rng):
    """Fresh Glorot-normal draw. (Reference: permutes the whole layer's init values.)"""
    _need_rng(rng, "Mask-1 action 'random_reinit'")
    return glorot_normal(w_init.shape, rng)


def _random_reshuffle(w_init, mask, rng):
    """Permute the initial values among the kept positions of the layer."""
    _need_rng(rng, "Mask-1 action 'random_reshuffle'")
    out = w_init.copy()
    out[mask] = rng.permutation(w_init[mask])
    return out


def layer_std(w_init) -> float:
    """The signed constant of a layer: the std of its whole initial kernel (weight units).

    Population std over every element (``np.std``, ddof 0), as the reference computes
    it (``np.std(initial_weights[i])`` in ``train_lottery.py``, ``tf.nn.moments`` in its
    supermask layers). Its expectation is ``glorot_std(shape)``; a drawn layer differs
    from that by 0.1-2 %.
    """
    return float(np.std(np.asarray(w_init, dtype=np.float64)))


def _signed_constant(w_init, mask, rng):
    """``sign(w_init) * layer_std(w_init)``: the init's signs, one magnitude per layer.
    A weight initialised at exactly 0 stays 0."""
    return np.sign(w_init) * layer_std(w_init)


def _rand_signed_constant(w_init, mask, rng):
    """``layer_std(w_init)`` times the init's signs randomly permuted over the WHOLE layer.

    Each layer keeps exactly its init's number of positive, negative and zero signs (a
    weight initialised at exactly 0 gives a 0 that moves with the permutation); only their
    positions are random, so a layer whose init is 90 % positive stays exactly 90 %
    positive, which i.i.d. fair signs would not. Kept positions receive the permuted
    layer's values there: their positive count is a random draw from the layer's
    (hypergeometric), not fixed, exactly as in the reference.

    Reference (``train_lottery.py``, ``args.exp == 'rand_signed_constant'``): ``temp =
    signed_constant_val * init_sign``, flattened, then ``shuffle(temp)`` over all of the
    layer's weights (not only the kept ones), then reshaped. Followed as is, with one
    deviation: the reference shuffles with Python's ``random.shuffle``, which its
    ``--seed`` never seeds; here the permutation comes from ``rng``, so a seeded ``rng``
    reproduces it. (Its ``--signed_constant`` override of the magnitude is not offered.)
    """
    _need_rng(rng, "Mask-1 action 'rand_signed_constant'")
    signs = rng.permutation(np.sign(w_init).ravel()).reshape(w_init.shape)
    return signs * layer_std(w_init)


def _signed_reinit(w_init, mask, rng):
    """``sign(w_init) * |fresh Glorot-normal draw|``: keep signs, new magnitudes."""
    _need_rng(rng, "Mask-1 action 'signed_reinit'")
    return np.sign(w_init) * np.abs(glorot_normal(w_init.shape, rng))


def _signed_reshuffle(w_init, mask, rng):
    """``sign(w_init) * |w_init permuted among kept positions|``: keep signs, shuffle sizes."""
    _need_rng(rng, "Mask-1 action 'signed_reshuffle'")
    out = w_init.copy()
    out[mask] = np.sign(w_init[mask]) * np.abs(rng.permutation(w_init[mask]))
    return out


MASK1_ACTIONS: dict[str, Callable] = {
    "none": _none,
    "random_reinit": _random_reinit,
    "random_reshuffle": _random_reshuffle,
    "signed_constant": _signed_constant,
    "rand_signed_constant": _rand_signed_constant,
    "signed_reinit": _signed_reinit,
    "signed_reshuffle": _signed_reshuffle,
}


# --- Mask-0 actions: fn(kept, w_init, w_final, mask, rng) -> full start kernel, where
# ``kept`` is the Mask-1 result (only its kept positions are meaningful). ---


def _mask(kept, w_init, w_final, mask, rng):
    """Pruned weights are 0 (the default lottery-ticket behaviour)."""
    return np.where(mask, kept, 0.0)


def _freeze_init(kept, w_init, w_final, mask, rng):
    """Pruned weights frozen at their initial values."""
    return np.where(mask, kept, w_init)


def _freeze_reinit(kept, w_init, w_final, mask, rng):
    """Pruned weights frozen at a fresh Glorot-normal draw. (Listed in the reference's
    ``--model_type`` choices but not implemented there.)"""
    _need_rng(rng, "Mask-0 action 'freeze_reinit'")
    return np.where(mask, kept, glorot_normal(w_init.shape, rng))


def _shrank(w_init, w_final):
    """True where training moved the weight toward zero: ``|w_final| < |w_init|``."""
    return np.abs(w_final) < np.abs(w_init)


def _freeze_init_zero_mask(kept, w_init, w_final, mask, rng):
    """Pruned weights: 0 if they shrank during training, else frozen at init."""
    return np.where(mask, kept, np.where(_shrank(w_init, w_final), 0.0, w_init))


def _freeze_init_zero_all(kept, w_init, w_final, mask, rng):
    """As ``freeze_init_zero_mask``, and kept weights that shrank also START at 0.

    Reference: the zeroing runs over the whole layer and the result is also the
    training start value; the mask is unchanged, so those kept weights stay trainable.
    """
    return np.where(_shrank(w_init, w_final), 0.0, np.where(mask, kept, w_init))


MASK0_ACTIONS: dict[str, Callable] = {
    "mask": _mask,
    "freeze_init": _freeze_init,
    "freeze_reinit": _freeze_reinit,
    "freeze_init_zero_mask": _freeze_init_zero_mask,
    "freeze_init_zero_all": _freeze_init_zero_all,
}


def _lookup(registry: dict, name: str, kind: str) -> Callable:
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"Unknown {kind} action {name!r}. Valid {kind} actions: {', '.join(registry)}"
        ) from None


def get_mask1(name: str) -> Callable:
    """Mask-1 action ``fn(w_init, mask, rng) -> array`` (only kept positions are used).

    ConfigError listing the valid names if ``name`` is unknown.
    """
    return _lookup(MASK1_ACTIONS, name, "Mask-1")


def get_mask0(name: str) -> Callable:
    """Mask-0 action ``fn(kept, w_init, w_final, mask, rng) -> full start kernel``.

    ConfigError listing the valid names if ``name`` is unknown.
    """
    return _lookup(MASK0_ACTIONS, name, "Mask-0")


@dataclass(frozen=True)
class StartState:
    """Starting point of the next level.

    ``weights``: full kernels to load ({layer: array, kernel shape, init's float dtype}).
    ``masks``: {layer: bool array} to load into the masked layers (the input masks;
    no current action changes them). ``freeze_pruned``: the layers' option, True iff
    the Mask-0 action is not ``mask``.
    """

    weights: Weights
    masks: Masks
    freeze_pruned: bool


def apply_actions(
    mask1: str,
    mask0: str,
    init: Weights,
    final: Weights,
    masks: Masks,
    rng: Optional[np.random.Generator] = None,
) -> StartState:
    """Build the next level's start: Mask-1 on kept weights, Mask-0 on pruned ones.

    ``init``/``final``: the kernels at initialisation and at the end of the previous
    training run; ``masks``: the new masks (True = kept). All three need the same
    layers and shapes (else ConfigError). ``rng`` is required by the random actions.
    Layers are processed in ``init``'s order, so a seeded ``rng`` is reproducible.
    Inputs are not modified.
    """
    m1, m0 = get_mask1(mask1), get_mask0(mask0)
    check_same_layers(init, final, "init", "final")
    check_same_layers(init, masks, "init", "masks")
    weights, out_masks = {}, {}
    for layer in init:
        w_init = np.asarray(init[layer])
        w_final = np.asarray(final[layer])
        mask = np.array(masks[layer], dtype=bool)
        dtype = w_init.dtype if np.issubdtype(w_init.dtype, np.floating) else np.float64
        kept = m1(w_init.astype(np.float64), mask, rng)
        full = m0(kept, w_init.astype(np.float64), w_final.astype(np.float64), mask, rng)
        weights[layer] = np.asarray(full, dtype=dtype)
        out_masks[layer] = mask
    return StartState(weights=weights, masks=out_masks, freeze_pruned=mask0 != "mask")
