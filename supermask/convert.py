"""Any Keras 3 model -> a masked or supermask copy, and back to plain Keras layers.

* ``masked(model)``: a copy of ``model`` in which every ``keras.layers.Dense``,
  ``Conv1D`` and ``Conv2D`` is replaced by ``MaskedDense`` / ``MaskedConv1D`` /
  ``MaskedConv2D`` holding the same kernel and bias (masks all ones), everything else
  copied unchanged. While the masks are all ones the copy computes exactly what the
  original computes (the same ops on the same values).
* ``supermask(model, learner=...)``: the same into supermask layers: the kernels and
  biases become frozen, the scores learn (Zhou et al. 2019; Ramanujan et al. 2020).
* ``strip(model)``: back to plain ``Dense`` / ``Conv1D`` / ``Conv2D`` with the masks
  folded into the kernels (``inference_kernel()``), for ``.keras`` files or
  ``model.export`` with the user's own tooling.

Models may be ``keras.Sequential``, Functional, subclassed ``keras.Model`` (layers held
in attributes, or lists / tuples / dicts of them) and any nesting of these. Sequential
and Functional graphs are copied with ``keras.models.clone_model``; a subclassed model
(or custom layer holding layers) is re-created with ``from_config(get_config())`` and
its sub-layers swapped for their copies. Only exact ``Dense`` / ``Conv1D`` / ``Conv2D``
instances are converted (a subclass may compute something else); layers already masked
are copied as they are.

Walking a model (``walk``, ``named_layers``, ``prunable_layers``) gives every layer a
stable, unique key: the names from the top model down, joined by "/" (``"block1/conv"``;
a layer of the top model is just its name), as Keras spells variable paths. Two layers
with one key (possible in subclassed models) raise ``ConfigError``: rename one.
"""

import keras
import numpy as np

from supermask.errors import ConfigError
from supermask.seeds import derive_seed
from supermask.layers import (MaskedConv1D, MaskedConv2D, MaskedDense, MaskedLayer, SupermaskConv1D,
                              SupermaskConv2D, SupermaskDense)

CONVERTED = "keras.layers.Dense, Conv1D and Conv2D"
_MASKED = {keras.layers.Dense: MaskedDense, keras.layers.Conv1D: MaskedConv1D, keras.layers.Conv2D: MaskedConv2D}
_SUPERMASK = {keras.layers.Dense: SupermaskDense, keras.layers.Conv1D: SupermaskConv1D,
              keras.layers.Conv2D: SupermaskConv2D}
_PLAIN = {MaskedDense: keras.layers.Dense, MaskedConv1D: keras.layers.Conv1D, MaskedConv2D: keras.layers.Conv2D,
          SupermaskDense: keras.layers.Dense, SupermaskConv1D: keras.layers.Conv1D,
          SupermaskConv2D: keras.layers.Conv2D}
# Config entries of Keras's Dense that our layers do not take (refused when set).
_UNSUPPORTED = ("lora_rank", "lora_alpha", "quantization_config")


# --- walking a model ------------------------------------------------------------------
def children(layer):
    """The layers ``layer`` holds directly, in Keras's order (input layers left out).

    For a model this is ``model.layers``; for a custom layer holding layers, the layers
    Keras tracks on it (``Layer._flatten_layers``, the same list ``Model.layers`` reads).
    """
    if isinstance(layer, keras.Model):
        kids = layer.layers
    else:
        kids = layer._flatten_layers(include_self=False, recursive=False)
    return [kid for kid in kids if not isinstance(kid, keras.layers.InputLayer)]


def own_weights(layer):
    """The weights of ``layer`` that none of its sub-layers holds (all of them for a leaf)."""
    held = {id(v) for kid in children(layer) for v in kid.weights}
    return [v for v in layer.weights if id(v) not in held]


def walk(model):
    """``[(key, layer)]`` for every layer below ``model`` (containers before their layers).

    Keys as in the module docstring; a layer reached twice (shared) is listed once.
    ConfigError if two different layers get one key.
    """
    out, seen, keys = [], set(), {}

    def visit(layer, prefix):
        for kid in children(layer):
            if id(kid) in seen:
                continue
            seen.add(id(kid))
            key = f"{prefix}{kid.name}"
            if key in keys:
                raise ConfigError(f"Two layers of model '{model.name}' are both called {key!r}; give them "
                                  "distinct names (name=...) so that their masks and weights can be told apart.")
            keys[key] = kid
            out.append((key, kid))
            visit(kid, f"{key}/")

    visit(model, "")
    return out


def named_layers(model):
    """``{key: layer}`` of every layer below ``model`` (see ``walk``)."""
    return dict(walk(model))


def prunable_layers(model):
    """``{key: layer}`` of the layers with a kernel and a mask (masked or supermask), in order."""
    return {key: layer for key, layer in walk(model) if hasattr(layer, "inference_mask")}


def layer_kind(layer):
    """``"conv"`` for convolutions (a kernel of rank > 2), else ``"dense"``."""
    return "conv" if len(layer.kernel.shape) > 2 else "dense"


def require_prunable(model, what="model"):
    """``prunable_layers(model)``; ConfigError if there is none."""
    layers = prunable_layers(model)
    if not layers:
        raise ConfigError(f"The {what} '{model.name}' has no layer supermask can prune ({CONVERTED}, or the "
                          "masked / supermask layers). Build it from those layers.")
    return layers


# --- the three conversions ------------------------------------------------------------
def masked(model, *, freeze_pruned=False):
    """A copy of ``model`` with every Dense / Conv1D / Conv2D as its masked layer (masks all ones).

    ``freeze_pruned``: see ``supermask.layers.MaskedLayer`` (Mask-0 actions). ConfigError
    if ``model`` is unbuilt, cannot be copied, or has no prunable layer.
    """
    def convert(layer):
        if isinstance(layer, MaskedLayer):  # already masked: copied as is unless freeze_pruned differs
            cls = type(layer) if layer.freeze_pruned != bool(freeze_pruned) else None
        else:
            cls = _MASKED.get(type(layer))
        if cls is None:
            return None
        config = _layer_config(layer)
        return cls.from_config({**config, "freeze_pruned": bool(freeze_pruned)})

    def transfer(old, new):
        _copy(new.kernel, old.kernel)
        if new.bias is not None:
            _copy(new.bias, old.bias)
        if isinstance(old, MaskedLayer):
            _copy(new.mask, old.mask)

    copy = _convert(model, convert, transfer)
    require_prunable(copy)
    return copy


def supermask(model, *, learner="bernoulli", seed=0, signed_constant=False, **options):
    """A copy of ``model`` with every Dense / Conv1D / Conv2D as a supermask layer.

    The layer keeps the original kernel and bias, frozen (``signed_constant``: each
    kernel entry replaced by ``sign(w) * std(kernel)``, Zhou et al.'s signed constants);
    only its scores train. ``options``: the other ``SupermaskLayer`` arguments (``k``,
    ``dynamic_scaling``, ``inference_mode``, ``score_initializer``, ``score_regularizer``).
    Each layer's mask-sampling seed is derived from ``seed`` and its position, as the
    built-in models do. Kernel regularisers and constraints are dropped (the kernel is frozen).
    """
    index = iter(range(1, 10**6))

    def convert(layer):
        cls = _SUPERMASK.get(type(layer))
        if cls is None:
            return None
        config = {k: v for k, v in _layer_config(layer).items()
                  if k not in ("kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint")}
        return cls.from_config({**config, **options, "learner": learner, "signed_constant": bool(signed_constant),
                                "seed": derive_seed(seed, 500 + next(index))})

    def transfer(old, new):
        kernel = np.asarray(keras.ops.convert_to_numpy(old.kernel))
        if signed_constant:
            kernel = np.sign(kernel) * np.std(kernel)
        new.kernel.assign(kernel.astype(np.float32))
        if new.bias is not None:
            _copy(new.bias, old.bias)

    copy = _convert(model, convert, transfer)
    require_prunable(copy)
    return copy


def strip(model):
    """A copy of ``model`` with plain Keras layers only: each masked / supermask layer becomes a
    ``Dense`` / ``Conv1D`` / ``Conv2D`` whose kernel is its ``inference_kernel()`` (masks folded in)."""
    def convert(layer):
        cls = _PLAIN.get(type(layer))
        if cls is None:
            return None
        drop = {"freeze_pruned", "learner", "k", "signed_constant", "dynamic_scaling", "inference_mode",
                "score_initializer", "score_regularizer", "seed"}
        config = {k: v for k, v in layer.get_config().items() if k not in drop}
        return cls.from_config(config)

    def transfer(old, new):
        _copy(new.kernel, old.inference_kernel())
        if new.bias is not None:
            _copy(new.bias, old.bias)

    return _convert(model, convert, transfer)


# --- machinery ------------------------------------------------------------------------
def _layer_config(layer):
    """``layer.get_config()`` for a Dense / Conv to convert; ConfigError for LoRA / quantised ones."""
    config = layer.get_config()
    if getattr(layer, "quantization_mode", None):
        raise ConfigError(f"Layer '{layer.name}' is {layer.quantization_mode}-quantized; convert the model "
                          "before quantizing it.")
    if config.get("lora_rank"):
        raise ConfigError(f"Layer '{layer.name}' has LoRA enabled; merge or drop the LoRA weights first.")
    return {k: v for k, v in config.items() if k not in _UNSUPPORTED}


def is_graph(layer):
    """Sequential or Functional: a graph ``clone_model`` can copy."""
    return isinstance(layer, keras.Model) and any(
        cls.__name__ in ("Sequential", "Functional") and cls.__module__.startswith("keras.")
        for cls in type(layer).__mro__)


def _convert(model, convert, transfer):
    """Copy ``model`` with ``convert(layer)`` (a new layer, or None to copy it as is) applied to
    every layer, build the copy, then move the weights over (``transfer`` for converted ones)."""
    if not isinstance(model, keras.Layer):
        raise ConfigError(f"Expected a Keras model. Received: {type(model).__name__}")
    if not model.built:
        raise ConfigError(f"Model '{model.name}' is not built; give it a keras.Input or call it on a batch "
                          "once, so that its weights exist.")
    pairs, memo = [], {}

    def copy(layer):
        if id(layer) in memo:
            return memo[id(layer)]
        if is_graph(layer):
            new = keras.models.clone_model(layer, clone_function=copy)
            kind = "container"
        else:
            new = convert(layer)
            kind = "converted"
            if new is None:
                new, kind = _from_config(layer), "same"
                if children(layer):
                    _swap_children(layer, new, copy)
                    kind = "container"
        memo[id(layer)] = new
        pairs.append((layer, new, kind))
        return new

    new_model = copy(model)
    if not new_model.built:
        _build_like(new_model, model)
    for old, new, kind in pairs:
        if kind == "converted":
            transfer(old, new)
        else:
            _assign(old, new, own_weights(old), own_weights(new))
    return new_model


def _from_config(layer):
    """A fresh, unbuilt layer of ``layer``'s class and config, with its name."""
    try:
        new = type(layer).from_config(layer.get_config())
    except Exception as exc:  # NotImplementedError, TypeError: a class Keras cannot re-create
        raise ConfigError(f"Cannot copy layer '{layer.name}' ({type(layer).__name__}): "
                          f"{type(layer).__name__}.from_config(get_config()) failed ({type(exc).__name__}: {exc}). "
                          "Give the class a get_config() returning its constructor arguments.") from None
    new.name = layer.name
    return new


def _layer_values(value):
    """The layers in an attribute value: the layer itself, or those in a list / tuple / dict."""
    if isinstance(value, keras.Layer):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, keras.Layer)]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, keras.Layer)]
    return []


def _attribute_names(layer):
    """The names of ``layer``'s attributes: its ``__dict__``, and on PyTorch the sub-modules
    ``torch.nn.Module`` keeps apart in ``_modules`` (every Keras layer is a module there)."""
    names = list(vars(layer))
    modules = vars(layer).get("_modules")
    if isinstance(modules, dict):
        names += [name for name in modules if name not in names]
    return names


def _swap_children(old, new, copy):
    """In ``new`` (``old``'s class, freshly constructed), replace each sub-layer held in an
    attribute by ``copy`` of the layer ``old`` holds there, keeping Keras's tracking order."""
    tracker = new._tracker  # Keras's attribute tracker: swapping keeps the layer order

    def swap(fresh, replacement):
        if not isinstance(fresh, keras.Layer):
            raise ConfigError(f"Cannot copy '{old.name}' ({type(old).__name__}): a fresh instance holds "
                              f"{type(fresh).__name__} where the model holds a layer.")
        if tracker.is_in_store("layers", replacement):
            tracker.untrack(fresh)
        elif tracker.is_in_store("layers", fresh):
            tracker.replace_tracked_value("layers", fresh, replacement)
        return replacement

    reached = set()
    for attr in _attribute_names(old):
        value = getattr(old, attr, None)
        layers = _layer_values(value)
        if not layers or (attr.startswith("_") and not isinstance(value, keras.Layer)):
            continue
        fresh = getattr(new, attr, None)
        if isinstance(value, keras.Layer):
            setattr(new, attr, swap(fresh, copy(value)))
        elif isinstance(value, (list, tuple, dict)) and type(fresh) is type(value) and len(fresh) == len(value):
            keys = list(value) if isinstance(value, dict) else range(len(value))
            items = {k: swap(fresh[k], copy(value[k])) if isinstance(value[k], keras.Layer) else fresh[k]
                     for k in keys}
            if isinstance(value, list):
                for k, item in items.items():
                    list.__setitem__(fresh, k, item)
            elif isinstance(value, dict):
                for k, item in items.items():
                    dict.__setitem__(fresh, k, item)
            else:
                setattr(new, attr, type(value)(items[k] for k in keys))
        else:
            raise ConfigError(f"Cannot copy '{old.name}' ({type(old).__name__}): its attribute {attr!r} holds "
                              "layers, but a fresh instance built from its config holds something else there.")
        reached.update(id(layer) for layer in layers)
    missing = [kid.name for kid in children(old) if id(kid) not in reached]
    if missing:
        raise ConfigError(f"Cannot copy '{old.name}' ({type(old).__name__}): its layer(s) {', '.join(missing)} "
                          "are not held in an attribute (or a list / tuple / dict attribute) of it.")


def _build_like(new, old):
    """Build ``new`` (a subclassed copy) on symbolic inputs shaped like ``old``'s build inputs."""
    config = old.get_build_config() or {}
    shape = config.get("input_shape")
    if shape is None:
        raise ConfigError(f"Model '{old.name}' records no input shape; call it on a batch once before "
                          "converting it.")

    def tensor(s):
        return keras.KerasTensor((None, *tuple(s)[1:]))

    nested = isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple))
    new(([tensor(s) for s in shape]) if nested else tensor(shape))


def _assign(old, new, old_vars, new_vars):
    """Copy ``old_vars`` into ``new_vars`` (same count and shapes, else ConfigError)."""
    if len(old_vars) != len(new_vars) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(old_vars, new_vars)):
        raise ConfigError(f"Cannot copy the weights of layer '{old.name}' ({type(old).__name__}): its copy has "
                          f"{[tuple(v.shape) for v in new_vars]}, the original {[tuple(v.shape) for v in old_vars]}.")
    for a, b in zip(old_vars, new_vars):
        _copy(b, a)



def _copy(variable, value):
    """``variable.assign`` of a copy of ``value``: assigning a variable itself would share its buffer on
    JAX, and ``fit`` donates (deletes) the buffers of the model it trains, so training the copy would
    delete the original's weights."""
    variable.assign(keras.ops.copy(value))


__all__ = ["masked", "supermask", "strip", "walk", "named_layers", "prunable_layers", "layer_kind",
           "own_weights", "children", "require_prunable"]
