"""What every settings class shares: field metadata, type and range checks, canonical JSON, the hash.

A settings class names everything that changes a result (model, dataset, budget, seed...)
and nothing that does not (where the data lives, where outputs go). Its hash is the
SHA-256 of the canonical JSON of the fields that differ from their defaults, so adding a
field with a default keeps every old hash (and every old experiment folder) valid
(open_lth's ``Hparams``).

Field metadata drive the command-line flags (``supermask.cli``): ``help``; ``choices``, a
function returning the valid names, so that ``--help`` lists them (an open registry may grow);
``normalize`` (e.g. ``fashion-mnist`` -> ``fashion_mnist``); ``cli: False`` for fields that are
filled in by a run, never given.
"""

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import field

from supermask.errors import ConfigError


def unset(text, **metadata):
    """A field whose ``None`` means "the recipe's value" (filled in by ``supermask.recipes.resolve``)."""
    return field(default=None, metadata={"help": text, **metadata})


def option(default, text, **metadata):
    """A field with a fixed default."""
    return field(default=default, metadata={"help": text, **metadata})


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def snake(value):
    return str(value).strip().replace("-", "_")


def comma_items(value, what):
    """A comma string (``"a, b"``) or a list as a list of items (strings stripped, empty ones dropped);
    ConfigError naming ``what`` for anything else."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    try:
        return list(value)
    except TypeError:
        raise ConfigError(f"{what} must be a comma list or a list. Received: {what}={value!r}") from None


def set_ints(settings, *names):
    """Store integral fields as plain ``int`` (numpy integers do not serialise to JSON)."""
    for name in names:
        value = getattr(settings, name)
        if is_int(value):
            object.__setattr__(settings, name, int(value))


def positive(settings, *names):
    """ConfigError unless each set field is a finite number > 0."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and (not is_real(value) or not math.isfinite(value) or not value > 0):
            raise ConfigError(f"{name} must be a finite number > 0. Received: {name}={value!r}")


def positive_int(settings, *names):
    """ConfigError unless each set field is an integer > 0."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and (not is_int(value) or value <= 0):
            raise ConfigError(f"{name} must be an integer > 0. Received: {name}={value!r}")


def non_negative_int(settings, *names):
    """ConfigError unless each set field is an integer >= 0."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and (not is_int(value) or value < 0):
            raise ConfigError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
    set_ints(settings, *names)


def finite(settings, *names, minimum=None):
    """ConfigError unless each set field is a finite number (>= ``minimum`` if given)."""
    for name in names:
        value = getattr(settings, name)
        if value is None:
            continue
        if not is_real(value) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number{'' if minimum is None else f' >= {minimum}'}. "
                              f"Received: {name}={value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be >= {minimum}. Received: {name}={value!r}")


def fraction(settings, *names):
    """ConfigError unless each set field is a number in [0, 1)."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and not (is_real(value) and 0 <= value < 1):
            raise ConfigError(f"{name} must be in [0, 1). Received: {name}={value!r}")


def one_of(settings, name, choices):
    """ConfigError unless the field (when set) is one of ``choices``."""
    value = getattr(settings, name)
    if value is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}. Received: {name}={value!r}")


def to_dict(settings):
    """All fields of a settings object as a plain dict (its readable form, for hparams.json)."""
    return dataclasses.asdict(settings)


def non_default_dict(settings):
    """Only the fields that differ from their defaults."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if getattr(settings, f.name) != f.default}


def canonical_json(data):
    """Deterministic JSON text: sorted keys, no whitespace."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def config_hash(settings, length=12):
    """Hex digest naming ``settings``: SHA-256 of its class name and the fields that name it
    (``hash_fields()`` where the class has one, else the non-default fields)."""
    fields = settings.hash_fields() if hasattr(settings, "hash_fields") else non_default_dict(settings)
    payload = canonical_json({"kind": type(settings).__name__, **fields})
    return hashlib.sha256(payload.encode()).hexdigest()[:length]
