"""The dataset catalogue: the names, shapes, classes and split sizes of the built-in datasets.

Plain constants and checks, free of numpy and of the rest of `supermask.data`, so that
the settings layer can check a dataset name and a sweep can size its runs without
reading any file. A name given to the Python API for your own arrays
(``"<label>:<content hash>"``, see ``from_arrays``) is "in memory": it is no entry here.
"""

from __future__ import annotations

import operator

from supermask.errors import ConfigError

DATASETS = ("mnist", "fashion_mnist", "cifar10")
# Shape of one example of each built-in dataset.
INPUT_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
# Number of classes of each built-in dataset (labels 0..9 for all three).
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}
# Size of the training split of each built-in dataset, before the validation hold-out.
TRAIN_EXAMPLES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
# Training examples held out (the last ones) for validation, unless told otherwise.
VALIDATION_SIZE = 5000


def is_in_memory(name) -> bool:
    """Whether ``name`` labels arrays given to the Python API ("<label>:<content hash>", ``from_arrays``)."""
    return isinstance(name, str) and ":" in name


def canonical_name(name) -> str:
    """``name`` as spelled in `DATASETS` (``"Fashion-MNIST"`` -> ``"fashion_mnist"``); ConfigError if unknown."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} "
                          "('fashion-mnist' is accepted for 'fashion_mnist')")
    return key


def train_examples(name, validation_size=VALIDATION_SIZE) -> int:
    """Training examples of dataset ``name`` left after holding out ``validation_size``.

    E.g. ``train_examples("mnist", 5000) == 55000``. Raises ConfigError for a name in
    memory (its size is known only from its arrays) or unknown, and for a
    ``validation_size`` that is not an integer in ``[0, TRAIN_EXAMPLES[name])``.
    """
    if is_in_memory(name):
        raise ConfigError(f"Dataset {name!r} is arrays given to the Python API (data=...); its size is not in "
                          "the catalogue: take it from the arrays.")
    name = canonical_name(name)
    try:
        size = None if isinstance(validation_size, bool) else operator.index(validation_size)
    except TypeError:
        size = None
    if size is None or size < 0:
        raise ConfigError(f"validation_size must be an integer >= 0, got {validation_size!r}")
    total = TRAIN_EXAMPLES[name]
    if size >= total:
        raise ConfigError(f"validation_size={size} must be smaller than the {total} training images of {name}")
    return total - size
