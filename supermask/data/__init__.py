"""Datasets: MNIST, Fashion-MNIST and CIFAR-10 as float32 NHWC arrays, and your own arrays.

``load_dataset(name)`` finds the raw files, checks them and returns a `Dataset` with a
deterministic split: the LAST ``validation_size`` training images are the validation set.
``from_arrays`` / ``as_dataset`` make a `Dataset` of arrays given to the Python API.

One module per concept, each importing only the ones above it:

- `catalog`: names, shapes, classes and split sizes of the built-in datasets (no numpy);
- `dataset`: the `Dataset` split, ``from_arrays``, ``as_dataset``;
- `formats`: the bounded byte-level readers (IDX, CIFAR-10 pickled batches);
- `checksums`: the SHA-256 and sizes of the real MNIST / Fashion-MNIST files;
- `sources`: where the files are (``data_dir``, ``$SUPERMASK_DATA``, cache, download);
- `load`: ``load_dataset``.

This package re-exports their public names (and the private ones tests use).
"""

from supermask.data.catalog import (
    DATASETS,
    INPUT_SHAPES,
    NUM_CLASSES,
    TRAIN_EXAMPLES,
    VALIDATION_SIZE,
    canonical_name,
    is_in_memory,
    train_examples,
)
from supermask.data.checksums import IDX_SIZES, SHA256
from supermask.data.dataset import Dataset, as_dataset, from_arrays
from supermask.data.formats import CIFAR_FILES, IDX_FILES, read_cifar_batch, read_idx
from supermask.data.load import CIFAR_MEAN, CIFAR_STD, load_dataset
from supermask.data.sources import CIFAR_ARCHIVE_SHA256, URLS, resolve_source

__all__ = [
    "CIFAR_ARCHIVE_SHA256", "CIFAR_FILES", "CIFAR_MEAN", "CIFAR_STD", "DATASETS", "IDX_FILES", "IDX_SIZES",
    "INPUT_SHAPES", "NUM_CLASSES", "SHA256", "TRAIN_EXAMPLES", "URLS", "VALIDATION_SIZE", "Dataset", "as_dataset",
    "canonical_name", "from_arrays", "is_in_memory", "load_dataset", "read_cifar_batch", "read_idx",
    "resolve_source", "train_examples",
]
