"""What a run is, beyond the names in its config: fingerprints of the built model and the data.

A config names its model ("fc", "my_models:build") and dataset ("mnist"); the code behind a
name can change. Two fingerprints pin what a run actually used:

- ``model_fingerprint(model)``: SHA-256 (16 hex digits) of the architecture: every layer's
  key, class and config (Keras's ``get_config``, with seeds left out so that trials of one
  experiment share it), the model's own config (a Functional graph's connections), and every
  weight's path, shape and dtype. Never the weight values. A builder whose width or activation
  changed gets another fingerprint; one whose ``call`` computes something else with the same
  layers and configs (an activation applied with ``keras.ops`` inside ``call``) does not.
- ``data_fingerprint(dataset)``: SHA-256 (16 hex digits) of the six arrays and their shapes.

``identify(config, model, data)`` puts both in a resolved config. For your own models (a
builder or a model instance) the model fingerprint is part of the folder's hash, so a changed
builder starts a new experiment; built-in models and named datasets keep their folder names
(``TrainConfig.hash_fields``) and ``check_same(recorded, config, where)`` refuses to resume an
experiment recorded with other fingerprints.
"""

import dataclasses
import hashlib
import json
import weakref

import numpy as np

from supermask import criteria
from supermask.convert import walk
from supermask.errors import ConfigError

_DROPPED = ("seed",)  # config keys that differ between trials of one experiment, not architectures


def _without_seeds(value):
    if isinstance(value, dict):
        return {k: _without_seeds(v) for k, v in value.items() if k not in _DROPPED}
    if isinstance(value, (list, tuple)):
        return [_without_seeds(v) for v in value]
    return value


def _config(layer):
    try:
        return _without_seeds(layer.get_config())
    except (NotImplementedError, TypeError):  # a layer without a serialisable config
        return None


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def architecture(model):
    """The JSON-able description ``model_fingerprint`` hashes (see the module docstring)."""
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config": _config(model),
        "layers": [[key, f"{type(layer).__module__}.{type(layer).__qualname__}", _config(layer)]
                   for key, layer in walk(model)],
        "weights": [[v.path, list(v.shape), str(v.dtype)] for v in model.weights],
    }


def model_fingerprint(model):
    """16 hex digits naming ``model``'s architecture (not its weight values)."""
    return hashlib.sha256(_canonical(architecture(model)).encode()).hexdigest()[:16]


def weights_digest(model):
    """12 hex digits of a SHA-256 of ``model``'s weight values (paths, shapes and bytes)."""
    digest = hashlib.sha256()
    for v in model.weights:
        array = np.ascontiguousarray(np.asarray(v.numpy() if hasattr(v, "numpy") else v))
        digest.update(f"{v.path}:{array.shape}:{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:12]


_DATA_FINGERPRINTS = weakref.WeakKeyDictionary()  # Dataset -> fingerprint: a Dataset's arrays are not replaced


def data_fingerprint(dataset):
    """16 hex digits of a SHA-256 of a ``supermask.data.Dataset``'s arrays (train, validation, test);
    computed once per Dataset object (MNIST: about 0.3 s)."""
    if dataset in _DATA_FINGERPRINTS:
        return _DATA_FINGERPRINTS[dataset]
    digest = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, dataset.x_test, dataset.y_test):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    _DATA_FINGERPRINTS[dataset] = digest.hexdigest()[:16]
    return _DATA_FINGERPRINTS[dataset]


def identify(config, model, data):
    """``config`` with ``model_fingerprint`` and ``data_fingerprint`` filled in from the built
    ``model`` and the ``data`` (a ``Dataset``) the run uses."""
    config = dataclasses.replace(config, model_fingerprint=model_fingerprint(model),
                                 data_fingerprint=data_fingerprint(data))
    if hasattr(config, "criterion_fingerprint"):  # your own criterion's source is part of the identity
        config = dataclasses.replace(config, criterion_fingerprint=criteria.fingerprint(config.criterion))
    return config


def check_same(recorded, config, where):
    """ConfigError if the ``recorded`` hparams (a dict from ``hparams.json``) name other
    fingerprints than ``config``'s: ``where`` (the experiment folder) was run with another
    architecture or other data under the same names. Folders from before fingerprints
    existed record none and are accepted (then recorded)."""
    for field, what in (("model_fingerprint", f"architecture of model {config.model!r}"),
                        ("data_fingerprint", f"data of dataset {config.dataset!r}")):
        old, new = recorded.get(field), getattr(config, field)
        if old is not None and new is not None and old != new:
            raise ConfigError(f"{where} was run with another {what} (fingerprint {old}; this run's is {new}), so "
                              "it cannot be resumed with this one: use another --root, or restore what it was "
                              "run with.")
