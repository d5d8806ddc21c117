"""Pruning a Keras model in memory: ``prune``, ``rewind``, ``sparsity``, ``strip`` (and ``masked``, ``snapshot``).

The verbs a user with a model and a training routine of their own needs, on top of the same pure
functions the experiment runners use (``criteria.compute_scores``, ``pruning.prune`` /
``prune_global``, ``masks.get/set_masks``):

* ``prune(model, sparsity=0.8 | rate=0.2, criterion=..., scope="layerwise" | "global", ignore=[...],
  reference=W0)`` returns the pruned model. **Masks are updated in place wherever they exist**: a model
  that already has masked layers (``masked``, an earlier ``prune``, a ``model.keras`` this library
  wrote) is pruned in place and returned, with its compile state and optimizer kept. A plain model has
  no masks to update: it gets a masked copy (its ``Dense`` / ``Conv1D`` / ``Conv2D`` as masked layers
  holding the same weights; compiled as yours was, with a fresh optimizer), which is returned, and your
  model is left as it was. Either way ``model = supermask.prune(model, ...)`` is the idiom.
* ``rewind(model, to)``: every weight back to a snapshot (``snapshot(model)`` taken earlier, a model
  of the same architecture, or a ``weights_*.h5`` file); masks stay. A compiled model gets a fresh
  optimizer (open_lth and the papers restart the optimiser at every level).
* ``sparsity(model)``: per-layer table: kept / total / % kept (masked layers: their masks; plain
  layers: their nonzero kernel entries).
* ``strip(model)``: a plain Keras copy with the masks folded into the kernels (``convert.strip``).

How the counts are chosen (the same closed forms as the lottery, ``supermask.pruning``): with
``sparsity=s`` a layer keeps ``round(size * (1 - s))`` of its weights (``scope="global"``: the pruned
layers together keep ``round(total * (1 - s))``); with ``rate=r`` it keeps ``round(unpruned * (1 - r))``
of the weights still unpruned (one IMP round; ``(1 - r) ** L`` after L calls, up to rounding). Ties go
to the lower index (``pruning.prune``). Pruning never revives a weight.

How this maps onto the tools people know:
``torch.nn.utils.prune.global_unstructured(params, pruning_method=L1Unstructured, amount=0.2)`` is
``prune(model, rate=0.2, scope="global")`` (``amount`` is a fraction of what is still unpruned, as
``rate``); ``torch.nn.utils.prune.l1_unstructured(module, "weight", amount=0.2)`` per layer is
``scope="layerwise"``; ``prune.remove`` is ``strip``. tfmot's ``prune_low_magnitude(model,
ConstantSparsity(0.8, 0))`` is ``prune(model, sparsity=0.8)`` (one shot) or, during ``fit``,
``supermask.callbacks.GradualPruning``; ``strip_pruning`` is ``strip``.
"""

import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from supermask import convert, criteria, pruning, store
from supermask import masks as M
from supermask.errors import ConfigError

SCOPES = ("layerwise", "global")


def masked(model):
    """A copy of ``model`` with masked layers (all masks ones), compiled as ``model`` was (a fresh
    optimizer); a model that already has masked layers is returned as it is."""
    return model if _mask_layers(model) else masked_copy(model)


def masked_copy(model, *, freeze_pruned=False):
    """Always a copy: ``model`` with masked layers (``convert.masked``), compiled as ``model`` was."""
    copy = convert.masked(model, freeze_pruned=freeze_pruned)
    compile_like(copy, model)
    return copy


def snapshot(model):
    """Every weight of ``model`` but its masks, as ``{"layer/var": numpy array}`` (a copy): what
    ``rewind`` and ``prune(reference=...)`` take. A plain model and its masked copy share the keys."""
    return {key: np.array(value) for key, value in M.get_weights(model).items()}


def prune(model, sparsity=None, *, rate=None, criterion="large_final", scope="layerwise", ignore=(),
          reference=None, seed=0):
    """Prune ``model``'s Dense / Conv1D / Conv2D kernels; returns the pruned model (module docstring:
    in place when it has masked layers, else a masked copy).

    Args:
        sparsity: fraction of each layer's weights (``scope="global"``: of all pruned layers'
            weights) to have pruned afterwards, in [0, 1); or ``{layer: fraction}`` (layer-wise).
        rate: instead of ``sparsity``, the fraction of the still-unpruned weights to remove now
            (one IMP round); a number or ``{layer: fraction}``.
        criterion: a name in ``supermask.criteria`` (``large_final``: keep the largest ``|w|``), your
            own registered one (``criteria.register``) or a function ``fn(w_init, w_final, rng, mask)``.
        scope: ``"layerwise"`` (each layer to its own count) or ``"global"`` (one ranking over all).
        ignore: layer keys never pruned (e.g. the output layer), as listed by ``sparsity(model)``.
        reference: the weights the criterion reads as ``w_init`` (a ``snapshot``, a model of the same
            architecture, or a weights ``.h5`` file); needed by criteria that read the initial
            weights (``magnitude_increase``, ``movement``, ``large_init``...).
        seed: seeds the random criterion and the sign-aware criteria's tie-break.
    """
    if (sparsity is None) == (rate is None):
        raise ConfigError("prune needs exactly one of sparsity= (the fraction pruned afterwards) or rate= (the "
                          f"fraction of the unpruned weights to remove now). Received: sparsity={sparsity!r}, "
                          f"rate={rate!r}")
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {', '.join(SCOPES)}. Received: scope={scope!r}")
    criterion = criteria.name_of(criterion)
    if scope == "global":
        criteria.check_global(criterion)
    what, given = ("sparsity", sparsity) if rate is None else ("rate", rate)
    fraction = _fraction(given, what)
    if scope == "global" and isinstance(fraction, dict):
        raise ConfigError("scope='global' takes one fraction, not one per layer; use scope='layerwise'.")
    if reference is None and criteria.uses_init(criterion):
        raise ConfigError(f"Criterion {criterion!r} reads the initial weights: pass reference= (the weights your "
                          "training started from, e.g. supermask.snapshot(model) taken before training).")
    target = masked(model)
    layers = _mask_layers(target)
    ignore = _names(ignore, layers, "ignore")
    pruned = [name for name in layers if name not in ignore]
    if not pruned:
        raise ConfigError("Every prunable layer is in ignore: nothing to prune.")
    current = M.get_masks(target)
    # Counts: the lottery's closed form for one round (``keep_count(n, f, 1)``) of the layer's size
    # (sparsity) or of its still unpruned weights (rate).
    base = {name: current[name].size if rate is None else int(current[name].sum()) for name in pruned}
    unpruned = {name: int(current[name].sum()) for name in pruned}
    if scope == "global":
        keep = pruning.keep_count(sum(base.values()), fraction, 1)
        _check_keep("the pruned layers together", keep, sum(unpruned.values()), sum(base.values()))
    else:
        per_layer = _per_layer(fraction, pruned, what)
        keep = {name: pruning.keep_count(base[name], per_layer[name], 1) for name in pruned}
        for name in pruned:
            _check_keep(f"layer {name!r}", keep[name], unpruned[name], base[name])
    final = M.kernels(M.get_weights(target), pruned)
    init = final if reference is None else _reference_kernels(reference, target, pruned)
    scores = criteria.compute_scores(criterion, init, final, np.random.default_rng(seed),
                                     masks={name: current[name] for name in pruned})
    new = (pruning.prune_global(scores, current, keep, pruned) if scope == "global"
           else pruning.prune(scores, current, keep))
    M.set_masks(target, new)
    return target


def rewind(model, to, *, reset_optimizer=True):
    """Set every weight of ``model`` but its masks to ``to`` (a ``snapshot``, a model of the same
    architecture, or a weights ``.h5`` file such as a run's ``weights_init.h5``); returns ``model``.

    ``reset_optimizer``: a compiled model is compiled again as it was, with a fresh optimizer (its
    moments and step count from zero), as every level of the papers restarts the optimiser."""
    weights = _weights_of(to, model)
    missing = sorted(set(M.get_weights(model)) - set(weights))
    if missing:
        raise ConfigError(f"rewind: the weights to rewind to lack {', '.join(missing[:5])}"
                          f"{' ...' if len(missing) > 5 else ''}; take them with supermask.snapshot(model).")
    M.set_weights(model, weights)
    if reset_optimizer:
        compile_like(model, model)
    return model


@dataclass(frozen=True)
class Sparsity:
    """``sparsity(model)``: ``rows`` of ``{"layer", "kept", "total", "percent_kept"}``, and the totals."""

    rows: tuple

    @property
    def kept(self):
        return sum(r["kept"] for r in self.rows)

    @property
    def total(self):
        return sum(r["total"] for r in self.rows)

    @property
    def density(self):
        """Fraction of the prunable weights kept, in [0, 1]."""
        return self.kept / self.total if self.total else 1.0

    def __getitem__(self, layer):
        for row in self.rows:
            if row["layer"] == layer:
                return row
        raise KeyError(layer)

    def __str__(self):
        width = max([len("layer"), len("total")] + [len(r["layer"]) for r in self.rows])
        lines = [f"{'layer':<{width}}  {'kept':>10}  {'total':>10}  {'% kept':>7}"]
        for r in self.rows + ({"layer": "total", "kept": self.kept, "total": self.total,
                               "percent_kept": 100 * self.density},):
            lines.append(f"{r['layer']:<{width}}  {r['kept']:>10}  {r['total']:>10}  {r['percent_kept']:>7.2f}")
        return "\n".join(lines)

    __repr__ = __str__


def sparsity(model):
    """The kept / total / % kept of every prunable layer's kernel (``Sparsity``): a masked layer's
    mask, a plain ``Dense`` / ``Conv1D`` / ``Conv2D``'s nonzero entries (e.g. after ``strip``)."""
    rows = []
    for key, layer in convert.walk(model):
        if hasattr(layer, "inference_mask"):
            kept, total = int(np.count_nonzero(layer.inference_mask())), int(np.prod(layer.kernel.shape))
        elif type(layer) in (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D):
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            kept, total = int(np.count_nonzero(kernel)), int(kernel.size)
        else:
            continue
        rows.append({"layer": key, "kept": kept, "total": total, "percent_kept": 100 * kept / total if total else 100})
    if not rows:
        raise ConfigError(f"Model '{model.name}' has no Dense / Conv1D / Conv2D layer (nor a masked one).")
    return Sparsity(tuple(rows))


def strip(model):
    """A plain Keras copy of ``model`` with each mask folded into its kernel (``convert.strip``)."""
    return convert.strip(model)


# --- helpers ------------------------------------------------------------------------------
def _mask_layers(model):
    """``{key: layer}`` of the masked layers (with a settable mask) of ``model``; ConfigError for
    supermask layers, whose masks are learned."""
    layers = convert.prunable_layers(model)
    learned = [name for name, layer in layers.items() if not hasattr(layer, "set_mask")]
    if learned:
        raise ConfigError(f"Layers {', '.join(learned)} learn their masks (supermask layers); prune a model of "
                          "plain or masked layers, or strip(model) first.")
    return layers


def compile_like(target, source):
    """Compile ``target`` as ``source`` was compiled (a fresh optimizer); nothing if it was not
    (``target`` may be ``source``: it is compiled again)."""
    if not getattr(source, "compiled", False) or getattr(source, "optimizer", None) is None:
        return
    try:
        target.compile_from_config(source.get_compile_config())
    except Exception as exc:  # e.g. a loss Keras cannot deserialize: compile with the same objects
        config = dict(getattr(source, "_compile_config").config)
        optimizer = source.optimizer
        config["optimizer"] = type(optimizer).from_config(optimizer.get_config())
        try:
            target.compile(**config)
        except Exception:
            warnings.warn(f"Model '{target.name}' could not be compiled as '{source.name}' was ({exc}); "
                          "compile it yourself before training.", stacklevel=3)


def _weights_of(source, model):
    """``{"layer/var": array}`` from a snapshot dict, a Keras model or a weights .h5 file."""
    if isinstance(source, keras.Model):
        return M.get_weights(source)
    if isinstance(source, (str, Path)):
        return store.load_arrays(Path(source))
    if isinstance(source, dict):
        weights = {k: np.asarray(v) for k, v in source.items()}
        layers = convert.prunable_layers(model)
        if weights and all(k in layers for k in weights):  # {layer: kernel}, as masks are keyed
            return {f"{k}/kernel": v for k, v in weights.items()}
        return weights
    raise ConfigError("Weights must be a supermask.snapshot(model) dict, a Keras model of the same architecture "
                      f"or a weights .h5 file. Received: {type(source).__name__}")


def _reference_kernels(reference, model, layers):
    weights = _weights_of(reference, model)
    missing = [name for name in layers if f"{name}/kernel" not in weights]
    if missing:
        raise ConfigError(f"reference has no kernel for {', '.join(missing)}: pass supermask.snapshot(model) taken "
                          "before training, or a model of the same architecture.")
    return M.kernels(weights, layers)


def _names(value, layers, what):
    names = [value] if isinstance(value, str) else list(value or ())
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ConfigError(f"{what}: {', '.join(map(repr, unknown))} are not prunable layers. Valid: "
                          f"{', '.join(layers)}.")
    return set(names)


def _fraction(value, what):
    if isinstance(value, dict):
        return {k: _fraction(v, what) for k, v in value.items()}
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ConfigError(f"{what} must be a number in [0, 1). Received: {what}={value!r}")
    return float(value)


def _per_layer(value, layers, what):
    if not isinstance(value, dict):
        return {name: value for name in layers}
    _names(list(value), {n: None for n in layers}, what)
    return {name: value.get(name, 0.0) for name in layers}


def _check_keep(where, keep, unpruned, base):
    if keep > unpruned:
        raise ConfigError(f"{where} already keeps only {unpruned} of {base} weights, fewer than sparsity asks to "
                          f"keep ({keep}); pruning never revives weights: ask for a higher sparsity.")
