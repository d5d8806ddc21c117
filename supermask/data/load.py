"""``load_dataset``: a built-in dataset, checked, scaled and split, as a `Dataset`.

The split is deterministic: the LAST ``validation_size`` training images are the
validation set. The files come from `supermask.data.sources` and are read by
`supermask.data.formats` (MNIST and Fashion-MNIST checked by `supermask.data.checksums`);
any problem with them raises one `DataError` naming the file and what to do.
"""

from __future__ import annotations

import pathlib

import numpy as np

from supermask.data.catalog import VALIDATION_SIZE, canonical_name, is_in_memory
from supermask.data.checksums import _verified_bytes
from supermask.data.dataset import Dataset
from supermask.data.formats import _FIX, CIFAR_FILES, _parse_idx, read_cifar_batch
from supermask.data.sources import _find, resolve_source
from supermask.errors import ConfigError, DataError

# The per-channel mean and standard deviation CIFAR-10 pixels (in [0, 1]) are normalised by.
CIFAR_MEAN = np.array((0.4914, 0.4822, 0.4465), dtype=np.float32)
CIFAR_STD = np.array((0.2470, 0.2435, 0.2616), dtype=np.float32)


def _check_labels(labels: np.ndarray, count: int, path) -> np.ndarray:
    """``labels`` as int32 after checking there is one per image, each in 0..9."""
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(f"{path}: {labels.shape} labels for {count} images; {_FIX}.")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels outside 0..9 (min {labels.min()}, "
                        f"max {labels.max()}); {_FIX}.")
    return labels.astype(np.int32)


def _load_idx_split(folder: pathlib.Path, name: str, prefix: str):
    """Verified ``(images, labels)`` of the train or t10k files, images scaled to [0, 1]."""
    bases = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    paths = [_find(folder, base) or folder / f"{base}.gz" for base in bases]
    images, labels = (_parse_idx(_verified_bytes(p, name, b), p) for p, b in zip(paths, bases))
    labels = _check_labels(labels, len(images), paths[1])
    return (images.astype(np.float32) / 255.0)[..., None], labels


def _load_cifar_split(folder: pathlib.Path, files):
    """``(images, labels)`` of some batch files, images normalised per channel."""
    parts = [read_cifar_batch(folder / f) for f in files]
    labels = [_check_labels(y, len(x), folder / f) for f, (x, y) in zip(files, parts)]
    images = np.concatenate([x for x, _ in parts]).astype(np.float32) / 255.0
    return ((images - CIFAR_MEAN) / CIFAR_STD).astype(np.float32), np.concatenate(labels)


def load_dataset(name, data_dir=None, validation_size=VALIDATION_SIZE, cache_dir=None,
                 download=True) -> Dataset:
    """Load dataset ``name`` (one of `DATASETS`) as a `Dataset`.

    The last ``validation_size`` training images become the validation set (MNIST:
    55 000 / 5 000 / 10 000). MNIST and Fashion-MNIST pixels are scaled to [0, 1];
    CIFAR-10 pixels to [0, 1], then normalised per channel by `CIFAR_MEAN` / `CIFAR_STD`.
    """
    if is_in_memory(name):
        raise ConfigError(f"Dataset {name!r} is arrays given to the Python API (data=...); it cannot be loaded "
                          "by name. Pass the same data again.")
    name = canonical_name(name)
    if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)) \
            or validation_size < 0:
        raise ConfigError(f"validation_size must be an integer >= 0, got {validation_size!r}")
    folder = resolve_source(name, data_dir, cache_dir, download)
    if name == "cifar10":
        x_train, y_train = _load_cifar_split(folder, CIFAR_FILES[:5])
        x_test, y_test = _load_cifar_split(folder, CIFAR_FILES[5:])
    else:
        x_train, y_train = _load_idx_split(folder, name, "train")
        x_test, y_test = _load_idx_split(folder, name, "t10k")
    n = len(x_train)
    if validation_size >= n:
        raise ConfigError(f"validation_size={validation_size} must be smaller than the "
                          f"{n} training images of {name}")
    cut = n - validation_size
    return Dataset(name, x_train[:cut], y_train[:cut], x_train[cut:], y_train[cut:],
                   x_test, y_test)
