"""Keep-scores at initialisation: one function per method, an open registry, pruning to a density.

Every method is ``fn(model, batches, masks, rng, options) -> {layer: float64 array}``: a score per
kernel entry of each prunable layer (``supermask.models.prunable_layers``, kernel shape), larger =
keep. ``batches``: a list of ``(x, y)`` of the training split (data-free methods ignore it);
``masks``: the layers' current masks ({layer: bool}); ``rng``: a numpy Generator; ``options``: a
``ScoreOptions``. Gradients and Hessian-vector products come from ``supermask.engine.autodiff``, so
the methods run on every backend. The gradient is taken w.r.t. a masked layer's *kernel*; its
effective kernel is ``kernel * mask``, so at density 1 (all-ones masks) it is the gradient w.r.t.
the weights the papers write, and a pruned entry's gradient is 0.

Register your own with ``register(name, fn)``; it is then a valid ``--methods`` name.
"""

from dataclasses import dataclass

import keras
import numpy as np

from supermask.convert import require_prunable
from supermask.engine import autodiff
from supermask.errors import ConfigError
from supermask.masks import get_masks, get_weights, kernels, set_masks
from supermask.models import prunable_layers
from supermask.pruning import keep_count, prune, prune_global

SCOPES = ("global", "layerwise")


@dataclass(frozen=True)
class ScoreOptions:
    """``grasp_temperature``: GraSP divides the logits by T when it computes g and Hg (its code's
    default, T = 200); ``synflow_rounds``: SynFlow's pruning rounds (the paper's default, 100)."""

    grasp_temperature: float = 200.0
    synflow_rounds: int = 100


def _kernel_grads(model, grads):
    """{layer: gradient} of the prunable layers' kernels from ``autodiff``'s {"layer/var": ...}."""
    return {layer: grads[f"{layer}/kernel"] for layer in prunable_layers(model)}


def _kernels(model):
    return {k: np.asarray(v, np.float64) for k, v in kernels(get_weights(model), prunable_layers(model)).items()}


def _mean_over(batches, compute):
    """The mean over ``batches`` of ``compute(x, y)`` ({key: array})."""
    total = None
    for x, y in batches:
        out = compute(x, y)
        total = out if total is None else {k: total[k] + out[k] for k in total}
    return {k: v / len(batches) for k, v in total.items()}


def mean_gradient(model, batches, temperature=1.0):
    """{"layer/var": mean over ``batches`` of dL/dw} (float64), L the mean cross-entropy of a batch
    with the logits divided by ``temperature``."""
    if not batches:
        raise ConfigError("Scoring needs at least one batch of training data (score_batches >= 1).")
    return _mean_over(batches, lambda x, y: autodiff.gradients(model, autodiff.loss_fn(model, x, y, temperature)))


def snip(model, batches, masks, rng, options):
    """SNIP (Lee et al. 2019): connection sensitivity ``|g ⊙ w|``, g = dL/dw.

    Lee et al. define the sensitivity of connection j as the magnitude of the derivative of the
    loss w.r.t. its mask variable c_j at c = 1, which is ``|g_j w_j|`` (normalised by the sum over
    all connections, which does not change the ranking), computed on one mini-batch of training
    data; here g is averaged over ``batches``.
    """
    grads = _kernel_grads(model, mean_gradient(model, batches))
    w = _kernels(model)
    return {layer: np.abs(grads[layer] * w[layer]) for layer in grads}


def grasp(model, batches, masks, rng, options):
    """GraSP (Wang et al. 2020): ``S = -w ⊙ Hg``; keep-score ``-S = w ⊙ Hg``.

    Wang et al. score each weight by its effect on the gradient norm after pruning (gradient signal
    preservation), ``S(-θ) = -θ ⊙ Hg`` (H the Hessian of the loss, g its gradient), and their
    algorithm REMOVES the fraction of weights with the largest S; the kept ones are those with the
    smallest S, so the keep-score returned here is ``-S``. As in the authors' code, g and Hg are
    computed with the logits divided by a temperature T (``options.grasp_temperature``, 200 there);
    g is the mean over ``batches`` and Hg the mean over the same batches of ``H_b g``.
    """
    t = options.grasp_temperature
    g = mean_gradient(model, batches, t)
    hg = _mean_over(batches, lambda x, y: autodiff.hessian_vector_product(
        model, autodiff.loss_fn(model, x, y, t), g))
    hg, w = _kernel_grads(model, hg), _kernels(model)
    return {layer: w[layer] * hg[layer] for layer in hg}


def synflow_scores(model):
    """One round of SynFlow (Tanaka et al. 2020): ``dR/dθ ⊙ θ`` with every parameter replaced by its
    absolute value, the input all ones (one example) and ``R`` the sum of the outputs, in inference
    mode (BatchNorm uses its moving statistics, also made absolute, as the authors' code does).
    Data-free; the current masks apply (a pruned entry's score is 0). Returns {layer: array >= 0}."""
    values = [keras.ops.abs(v) for v in autodiff.current_values(model)]
    non_trainable = [keras.ops.abs(keras.ops.convert_to_tensor(v.value))
                     if keras.backend.is_float_dtype(v.dtype) else keras.ops.convert_to_tensor(v.value)
                     for v in model.non_trainable_variables]
    ones = keras.ops.ones((1, *model.inputs[0].shape[1:]) if getattr(model, "inputs", None)
                          else (1, *model.input_shape[1:]))

    def fn(vals):
        out, _ = model.stateless_call(vals, non_trainable, ones, training=False)
        return keras.ops.sum(keras.ops.cast(out, "float32"))

    grads = _kernel_grads(model, autodiff.gradients(model, fn, values))
    w = {k: np.abs(v) for k, v in _kernels(model).items()}
    return {layer: grads[layer] * w[layer] for layer in grads}


def magnitude(model, batches, masks, rng, options):
    """Magnitude at initialisation: ``|w0|`` (the baseline of Frankle et al. 2021)."""
    return {layer: np.abs(w) for layer, w in _kernels(model).items()}


def random(model, batches, masks, rng, options):
    """Random pruning: scores uniform in [0, 1) from ``rng`` (so the mask is a uniformly random
    subset of the target size, per layer or globally)."""
    return {layer: rng.random(w.shape) for layer, w in _kernels(model).items()}


def synflow(model, batches, masks, rng, options):
    """SynFlow's single-round scores (``synflow_scores``); ``masks_at_init`` runs its iterative
    schedule (``ITERATIVE``)."""
    return synflow_scores(model)


METHODS = {"snip": snip, "grasp": grasp, "synflow": synflow, "magnitude": magnitude, "random": random}
BUILTIN = tuple(METHODS)
# Methods pruned in rounds, re-scored with the masks of the previous round (SynFlow's schedule).
ITERATIVE = {"synflow"}


def register(name, fn, iterative=False):
    """Add a method ``fn(model, batches, masks, rng, options) -> {layer: keep-score}`` under ``name``
    (``iterative``: pruned in ``options.synflow_rounds`` rounds on the exponential schedule)."""
    if not isinstance(name, str) or not name or "," in name or not callable(fn):
        raise ConfigError(f"register needs a name without commas and a function. Received: {name!r}, {fn!r}")
    METHODS[name] = fn
    if iterative:
        ITERATIVE.add(name)
    else:
        ITERATIVE.discard(name)


def get_method(name):
    """The scoring function of ``name``; ConfigError listing the valid names."""
    if name not in METHODS:
        raise ConfigError(f"Unknown pruning-at-init method {name!r}. Valid methods: {', '.join(METHODS)} "
                          "(add your own with supermask.prune_init.register).")
    return METHODS[name]


def check_density(density):
    if isinstance(density, bool) or not isinstance(density, (int, float, np.floating)) or not 0 < density <= 1:
        raise ConfigError(f"density (the fraction of weights remaining) must be in (0, 1]. Received: {density!r}")
    return float(density)


def prune_to(scores, masks, density, scope="global"):
    """Masks keeping a fraction ``density`` of the prunable weights by ``scores`` (larger = keep):
    ``global``, one ranking over every layer (``keep_count(total, 1 - density, 1)`` weights kept);
    ``layerwise``, each layer keeps that fraction of its own. Already-pruned entries stay pruned."""
    density = check_density(density)
    if scope == "global":
        total = sum(int(np.size(m)) for m in masks.values())
        return prune_global(scores, masks, keep_count(total, 1.0 - density, 1), list(masks))
    if scope == "layerwise":
        return prune(scores, masks, {k: keep_count(int(np.size(m)), 1.0 - density, 1) for k, m in masks.items()})
    raise ConfigError(f"scope must be one of {', '.join(SCOPES)}. Received: scope={scope!r}")


def masks_at_init(model, batches=(), method="snip", density=0.1, scope="global", seed=0, options=None, invert=False):
    """The masks ``method`` prunes ``model`` (in memory, at its current weights) to at ``density``.

    ``batches``: ``(x, y)`` pairs of training data (or a ``Dataset``: its first 100 training
    examples); ``seed``: the random method's generator; ``invert``: prune with the negated scores
    (Frankle et al. 2021's score inversion; for an iterative method at every round). Iterative
    methods (SynFlow) prune in ``options.synflow_rounds`` rounds, round r to density
    ``density ** (r / rounds)`` (Tanaka et al.'s exponential schedule), each round scored with the
    previous round's masks set on the model. The model's masks are restored afterwards. Returns
    {layer: bool array}.

    Example::

        masks = masks_at_init(model, [(x[:100], y[:100])], method="snip", density=0.1)
        supermask.masks.set_masks(model, masks)
    """
    return masks_at_densities(model, batches, method, [density], scope, seed, options, invert)[check_density(density)]


def masks_at_densities(model, batches, method, densities, scope="global", seed=0, options=None, invert=False):
    """``{density: masks}``: ``masks_at_init`` at each of ``densities``; a one-shot method is scored
    once for all of them (masks of one method are then nested across densities)."""
    options = options or ScoreOptions()
    fn = get_method(method)
    densities = [check_density(d) for d in densities]
    if hasattr(batches, "x_train"):
        batches = [(batches.x_train[:100], batches.y_train[:100])]
    batches = list(batches)
    require_prunable(model)
    original = get_masks(model)
    ones = {k: np.ones_like(m, dtype=bool) for k, m in original.items()}
    sign = -1.0 if invert else 1.0
    out = {}
    try:
        if method not in ITERATIVE:
            set_masks(model, ones)
            scores = fn(model, batches, ones, np.random.default_rng(seed), options)
            scores = {k: sign * np.asarray(scores[k], np.float64) for k in ones}
            return {d: prune_to(scores, ones, d, scope) for d in densities}
        rounds = int(options.synflow_rounds)
        for density in densities:
            masks, rng = ones, np.random.default_rng(seed)
            for r in range(1, rounds + 1):
                set_masks(model, masks)
                scores = fn(model, batches, masks, rng, options)
                target = density if r == rounds else density ** (r / rounds)
                masks = prune_to({k: sign * np.asarray(scores[k], np.float64) for k in masks}, masks, target, scope)
            out[density] = masks
    finally:
        set_masks(model, original)
    return out
