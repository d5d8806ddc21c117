"""The `Dataset` split (train / validation / test) and datasets made of your own arrays.

``from_arrays`` / ``as_dataset`` turn ``(x, y)`` pairs given to the Python API into a
`Dataset` named ``"<name>:<12 hex digits of a SHA-256 of the arrays>"``; ``load_dataset``
(`supermask.data.load`) returns one for the built-in datasets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from supermask.data.catalog import VALIDATION_SIZE
from supermask.errors import ConfigError


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset split into train / validation / test.

    Images are float32 NHWC arrays, labels int32 class indices in ``0..9``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 10

    @property
    def input_shape(self) -> tuple:
        """Shape of one example: ``(28, 28, 1)`` or ``(32, 32, 3)`` for the built-in datasets."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes (10 for all built-in datasets)."""
        return self.classes

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={len(self.x_train)}, val={len(self.x_val)}, "
                f"test={len(self.x_test)}, input_shape={self.input_shape})")


def _pair(split, what):
    try:
        x, y = split
    except (TypeError, ValueError):
        raise ConfigError(f"The {what} data must be a pair (x, y) of arrays. Received: {type(split).__name__}") from None
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or len(x) == 0:
        raise ConfigError(f"The {what} inputs must be an array of shape (examples, ...) with at least one example. "
                          f"Received shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ConfigError(f"The {what} inputs must be finite numbers. Received dtype {x.dtype}.")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.shape != (len(x),) or not (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)) \
            or (y.size and y.min() < 0):
        raise ConfigError(f"The {what} labels must be {len(x)} class indices (integers >= 0), one per example. "
                          f"Received shape {y.shape}, dtype {y.dtype}.")
    return x.astype(np.float32), y.astype(np.int32)


def from_arrays(train, test, validation=None, validation_size=VALIDATION_SIZE, num_classes=None,
                name="arrays") -> Dataset:
    """A `Dataset` of your own arrays: ``train`` and ``test`` (and ``validation``) as ``(x, y)`` pairs.

    ``x``: numbers of any shape ``(examples, ...)``, used as given (cast to float32:
    scale them yourself); ``y``: integer class indices. Without ``validation`` the last
    ``validation_size`` training examples are held out, as for the built-in datasets.
    ``num_classes`` defaults to the largest label + 1. The dataset's name is
    ``"<name>:<12 hex digits of a SHA-256 of the arrays>"``, so an experiment folder (the
    hash of a config that names it) never mixes two different datasets.
    """
    x_train, y_train = _pair(train, "training")
    x_test, y_test = _pair(test, "test")
    if validation is not None:
        x_val, y_val = _pair(validation, "validation")
    else:
        if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)) \
                or not 0 <= validation_size < len(x_train):
            raise ConfigError(f"validation_size must be an integer in [0, {len(x_train)}) (the training examples). "
                              f"Received: validation_size={validation_size!r}; pass validation=(x, y) or a smaller "
                              "validation_size.")
        cut = len(x_train) - int(validation_size)
        x_train, y_train, x_val, y_val = x_train[:cut], y_train[:cut], x_train[cut:], y_train[cut:]
    shapes = {x.shape[1:] for x in (x_train, x_val, x_test) if len(x)}
    if len(shapes) > 1:
        raise ConfigError(f"Training, validation and test inputs must have one shape per example. Received: "
                          f"{sorted(shapes)}.")
    largest = max(int(y.max()) for y in (y_train, y_val, y_test) if y.size)
    classes = largest + 1 if num_classes is None else num_classes
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2 or largest >= classes:
        raise ConfigError(f"num_classes must be an integer >= 2 above every label (largest label {largest}). "
                          f"Received: num_classes={num_classes!r}")
    if not isinstance(name, str) or not name or ":" in name:
        raise ConfigError(f"name must be a non-empty string without ':'. Received: name={name!r}")
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_val, y_val, x_test, y_test):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return Dataset(f"{name}:{digest.hexdigest()[:12]}", x_train, y_train, x_val, y_val, x_test, y_test,
                   classes=int(classes))


def as_dataset(data, validation_size=VALIDATION_SIZE) -> Dataset:
    """``data`` as a `Dataset`: a `Dataset` as is; ``((x, y), (x_test, y_test))`` or
    ``((x, y), (x_val, y_val), (x_test, y_test))``; or a dict with keys train, test (and
    validation) holding ``(x, y)`` pairs (see ``from_arrays``)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"train", "validation", "test"})
        if unknown or "train" not in data or "test" not in data:
            raise ConfigError(f"data as a dict needs the keys train and test (and optionally validation). "
                              f"Received: {sorted(data)}")
        return from_arrays(data["train"], data["test"], data.get("validation"), validation_size)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        *train_val, test = data
        return from_arrays(train_val[0], test, train_val[1] if len(train_val) == 2 else None, validation_size)
    raise ConfigError("data must be a supermask.data.Dataset, ((x, y), (x_test, y_test)), "
                      "((x, y), (x_val, y_val), (x_test, y_test)) or {'train': (x, y), 'test': (x, y)}. "
                      f"Received: {type(data).__name__}")
