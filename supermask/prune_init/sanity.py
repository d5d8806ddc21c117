"""The sanity checks of Frankle, Dziugaite, Roy & Carbin 2021 ("Pruning Neural Networks at
Initialization: Why Are We Missing the Mark?"), as pure functions on dicts of numpy arrays.

Paraphrasing the paper's ablations (Section 5): *random shuffling* permutes the pruning mask
within each layer, so every layer keeps its number of weights but not which ones; *reinitialization*
keeps the mask and draws the unpruned weights afresh from the initialisation distribution; *score
inversion* prunes the weights a method would keep (the lowest scores instead of the highest), at the
same sparsity. Their finding: the pruning-at-init methods lose little or nothing under shuffling and
reinitialization (what they learn is, in effect, a per-layer sparsity), and inversion hurts SNIP and
SynFlow but not GraSP; IMP's tickets with rewinding do degrade under the ablations.

``VARIANTS``: "none" (the method's own network), "shuffle", "reinit", "invert". Masks are
{layer: bool array} (True = kept), weights {"layer/var": array} (``supermask.masks``).
"""

import numpy as np

VARIANTS = ("none", "shuffle", "reinit", "invert")


def shuffle(masks, rng):
    """Each layer's mask with its entries randomly permuted (``rng``: a numpy Generator): the same
    number of kept weights per layer, at random positions."""
    out = {}
    for layer, mask in masks.items():
        flat = np.asarray(mask, dtype=bool).ravel()
        out[layer] = flat[rng.permutation(flat.size)].reshape(np.shape(mask))
    return out


def reinit(weights, fresh, masks):
    """The weights a reinitialised network starts from: ``fresh`` (a second draw of the same
    initialisers, e.g. the model built with another seed) for every prunable layer's kernel and bias
    in ``masks``, ``weights`` elsewhere (normalisation layers keep theirs); the masks are unchanged
    (returned as they are, for symmetry with ``shuffle``)."""
    out = dict(weights)
    for key in weights:
        layer = key.rpartition("/")[0]
        if layer in masks and key in fresh:
            out[key] = np.asarray(fresh[key])
    return out, masks


def invert(scores):
    """Score inversion: the negated keep-scores, so pruning keeps what the method would prune."""
    return {layer: -np.asarray(s, dtype=np.float64) for layer, s in scores.items()}
