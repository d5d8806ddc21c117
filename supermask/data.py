"""Datasets: MNIST, Fashion-MNIST and CIFAR-10 as float32 NHWC arrays.

``load_dataset(name)`` finds the raw files, checks them and returns a `Dataset` with a
deterministic split: the LAST ``validation_size`` training images are the validation set.

The raw files are taken from, first match wins: 1. ``data_dir`` (an error if it lacks the
dataset); 2. ``$SUPERMASK_DATA``; 3. the cache (``cache_dir``, else ``$SUPERMASK_CACHE``,
else ``~/.cache/supermask/datasets``); 4. a download into the cache with
``keras.utils.get_file`` unless ``download=False``. 1 and 2 may name the folder holding the
files or a parent with per-dataset subfolders (``mnist/``, ``fashion-mnist/`` or
``fashion_mnist/``, ``cifar-10-batches-py/``).

MNIST and Fashion-MNIST are the four standard IDX files (``.gz`` or not); every load checks
the SHA-256 of their *decompressed* content against `SHA256`, whatever the source.
Decompression is streamed and bounded, so a gzip bomb costs no memory: a file is refused as
soon as its content exceeds the size of the real file (`IDX_SIZES`) or, in `read_idx`, the
size its IDX header declares; an uncompressed file larger than that is refused from its size
alone. CIFAR-10 is the canonical python version (pickled batches), unpickled with an exact
allowlist of the numpy globals an array needs (any other global is refused before it is
imported); get_file verifies its archive. ``$SUPERMASK_DATA``, when set and not empty, must
name a folder. Any problem with the files (missing, not readable for lack of permission,
truncated, corrupt, too large) raises one `DataError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import pathlib
import pickle
import zlib
from dataclasses import dataclass

import numpy as np

from supermask.errors import ConfigError, DataError

DATASETS = ("mnist", "fashion_mnist", "cifar10")
# Shape of one example of each built-in dataset (all have 10 classes).
INPUT_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
VALIDATION_SIZE = 5000

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

# SHA-256 of the DECOMPRESSED files. Computed from copies whose decompressed MD5s equal
# the canonical ones (MNIST: 6bbc9ace.., a25bea73.., 2646ac64.., 27ae3e4e..;
# Fashion-MNIST: f4a8712d.., 9018921c.., 8181f547.., 15d48437..).
SHA256 = {
    "mnist": dict(zip(IDX_FILES, (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"))),
    "fashion_mnist": dict(zip(IDX_FILES, (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"))),
}
# Size in bytes of each DECOMPRESSED file, the same for MNIST and Fashion-MNIST (header +
# 60000 or 10000 images of 28x28 / labels): reading stops, with a DataError, past it.
IDX_SIZES = dict(zip(IDX_FILES, (47040016, 60008, 7840016, 10008)))
URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}
# SHA-256 of cifar-10-python.tar.gz, as pinned by Keras itself
# (keras/src/datasets/cifar10.py); its MD5 is the published c58f30108f718f92721af3b95e74349a.
CIFAR_ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR_MEAN = np.array((0.4914, 0.4822, 0.4465), dtype=np.float32)
CIFAR_STD = np.array((0.2470, 0.2435, 0.2616), dtype=np.float32)

# Subfolders of a parent folder (or of the cache) that may hold each dataset.
_SUBDIRS = {
    "mnist": ("mnist",),
    "fashion_mnist": ("fashion-mnist", "fashion_mnist"),
    "cifar10": ("cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
}
_FIX = ("delete or replace it (a cached copy is downloaded again on the next load), "
        "or point data_dir / SUPERMASK_DATA at a folder holding intact files")
_CHUNK = 1 << 20  # bytes read (decompressed) at a time


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


def is_in_memory(name) -> bool:
    """Whether ``name`` labels arrays given to the Python API ("<label>:<content hash>", ``from_arrays``)."""
    return isinstance(name, str) and ":" in name


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


def _canonical(name) -> str:
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} "
                          "('fashion-mnist' is accepted for 'fashion_mnist')")
    return key


def _permission_denied(path, action="read") -> DataError:
    """The DataError for a file or folder this process is not allowed to ``action``."""
    return DataError(f"cannot {action} {path}: permission denied; fix its permissions (chmod) "
                     "or point data_dir / SUPERMASK_DATA elsewhere.")


def _is_file(path: pathlib.Path) -> bool:
    """``path.is_file()``, but False (not PermissionError) when its folder cannot be searched."""
    try:
        return path.is_file()
    except PermissionError:
        return False


def _find(folder: pathlib.Path, base: str) -> pathlib.Path | None:
    """The file ``base`` in ``folder``: ``base.gz`` or ``base``, else None."""
    for candidate in (folder / f"{base}.gz", folder / base):
        if _is_file(candidate):
            return candidate
    return None


def _candidates(root: pathlib.Path, name: str):
    """``root`` and its subfolders that may hold dataset ``name``, in the order tried."""
    # MNIST and Fashion-MNIST share file names: never take a folder named after the
    # other dataset (e.g. SUPERMASK_DATA=.../mnist when loading fashion_mnist).
    others = {sub for key, subs in _SUBDIRS.items() if key != name for sub in subs}
    for folder in (root, *(root / sub for sub in _SUBDIRS[name])):
        if folder.name not in others:
            yield folder


def _holding(root: pathlib.Path, name: str, complete: bool) -> pathlib.Path | None:
    """The folder among ``root`` and its dataset subfolders that holds the files.

    With ``complete`` all files must be there, otherwise any one suffices (a partial
    folder is then reported file by file when loading).
    """
    bases = CIFAR_FILES if name == "cifar10" else IDX_FILES
    for folder in _candidates(root, name):
        found = [_find(folder, b) is not None for b in bases]
        if all(found) if complete else any(found):
            return folder
    return None


def _check_listable(root: pathlib.Path, name: str) -> None:
    """Raise DataError if ``root`` or a dataset subfolder of it exists but cannot be listed.

    Called when no files were found there, so that a permission problem is reported as
    such rather than as missing files (the superuser passes it: it may list anything).
    """
    for folder in _candidates(root, name):
        try:
            is_dir = folder.is_dir()
        except PermissionError:  # its parent cannot be searched: reported for the parent
            continue
        if is_dir and not os.access(folder, os.R_OK | os.X_OK):
            raise _permission_denied(folder, "list")


def _env_root() -> pathlib.Path | None:
    """The folder ``$SUPERMASK_DATA`` names; None if unset or empty, DataError if no folder."""
    env = os.environ.get("SUPERMASK_DATA")
    if not env:
        return None
    root = pathlib.Path(env).expanduser()
    try:
        if root.is_dir():
            return root
        state = "it is a file" if root.exists() else "nothing exists there"
    except PermissionError:
        raise _permission_denied(root, "open") from None
    raise DataError(
        f"SUPERMASK_DATA={env} is not a folder ({state}); set it to a folder holding the "
        "dataset files (or a parent of mnist/, fashion-mnist/, cifar-10-batches-py/), "
        "or unset it.")


def _cache_root(cache_dir) -> pathlib.Path:
    root = cache_dir or os.environ.get("SUPERMASK_CACHE") or "~/.cache/supermask/datasets"
    return pathlib.Path(root).expanduser()


def resolve_source(name, data_dir=None, cache_dir=None, download=True) -> pathlib.Path:
    """Return the folder holding the raw files of dataset ``name``, downloading if needed.

    See the module docstring for the search order. Raises `DataError` if an explicit
    ``data_dir`` lacks the dataset, if ``$SUPERMASK_DATA`` is set but names no folder, if a
    folder searched cannot be listed, or if nothing is found and ``download`` is False.
    """
    name = _canonical(name)
    bases = CIFAR_FILES if name == "cifar10" else IDX_FILES
    wanted = ", ".join(bases if name == "cifar10" else (f"{b}.gz" for b in bases))
    if data_dir is not None:
        root = pathlib.Path(data_dir).expanduser()
        folder = _holding(root, name, complete=False)
        if folder is None:
            _check_listable(root, name)
            raise DataError(
                f"data_dir {str(data_dir)!r} holds no {name} files: expected {wanted} in it "
                f"or in a subfolder {' or '.join(_SUBDIRS[name])} (a folder named after "
                "another dataset is not used). Put the files there, or leave data_dir "
                "unset to use SUPERMASK_DATA, the cache or a download.")
        return folder
    looked = []
    env_root = _env_root()
    if env_root is not None:  # a folder without this dataset: fall back to the cache
        folder = _holding(env_root, name, complete=False)
        if folder is not None:
            return folder
        _check_listable(env_root, name)
        looked.append(f"SUPERMASK_DATA={os.environ['SUPERMASK_DATA']}")
    cache = _cache_root(cache_dir)
    folder = _holding(cache, name, complete=True)
    if folder is not None:
        return folder
    _check_listable(cache, name)
    looked.append(f"the cache {cache}")
    if not download:
        raise DataError(
            f"{name} not found (looked in {' and '.join(looked)}) and download=False. "
            f"Expected the files {wanted}; pass data_dir=FOLDER, set SUPERMASK_DATA to a "
            "folder holding them (or a parent with per-dataset subfolders), or allow downloads.")
    return _download(name, cache)


def _get_file(**kwargs) -> pathlib.Path:
    """``keras.utils.get_file`` (imported lazily), turning its failures into DataError."""
    from keras.utils import get_file

    try:
        return pathlib.Path(get_file(**kwargs))
    except Exception as exc:  # get_file raises bare Exception / ValueError on failures
        raise DataError(
            f"could not download {kwargs['origin']} into {kwargs['cache_subdir']}: {exc}. "
            "Check the network connection, or download the files yourself and pass "
            "data_dir=FOLDER or set SUPERMASK_DATA.") from exc


def _download(name: str, cache: pathlib.Path) -> pathlib.Path:
    """Download dataset ``name`` into ``cache`` and return the folder holding its files."""
    cache.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        try:
            _get_file(fname="cifar10", origin=URLS[name], extract=True,
                      file_hash=CIFAR_ARCHIVE_SHA256, cache_dir=str(cache),
                      cache_subdir=str(cache))
        except DataError:
            (cache / "cifar10_archive").unlink(missing_ok=True)  # get_file's archive name
            raise
        folder = _holding(cache, name, complete=True)
        if folder is None:
            raise DataError(f"the CIFAR-10 archive extracted into {cache / 'cifar10'} lacks "
                            f"{', '.join(CIFAR_FILES)}; delete that folder and try again.")
        return folder
    folder = cache / _SUBDIRS[name][0]
    folder.mkdir(parents=True, exist_ok=True)
    for base in IDX_FILES:
        if _find(folder, base) is None:
            path = _get_file(fname=f"{base}.gz", origin=f"{URLS[name]}{base}.gz",
                             cache_dir=str(cache), cache_subdir=str(folder))
            try:
                _verified_bytes(path, name, base)
            except DataError:
                path.unlink(missing_ok=True)  # never keep a corrupt download in the cache
                raise
    return folder


@contextlib.contextmanager
def _content_stream(path):
    """Open ``path`` for reading its content; yield ``(stream, size)``.

    ``stream`` gunzips the file if it is gzip data (whatever its name), as it is read;
    ``size`` is the file's size if it is not gzipped, else None. A missing file, a
    permission problem or corrupt gzip data met while reading become a `DataError`.
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            if gzipped:
                with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                    yield stream, None
            else:
                yield f, os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise DataError(f"missing file {path}: put it there, or point data_dir / "
                        "SUPERMASK_DATA at a folder holding it.") from None
    except PermissionError:
        raise _permission_denied(path) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip/file ({exc}); {_FIX}.") from None


def _check_size(path, size: int | None, limit: int, why: str) -> None:
    """Refuse an uncompressed file (``size`` not None) of more than ``limit`` bytes unread."""
    if size is not None and size > limit:
        raise DataError(f"{path}: is {size} bytes, more than {limit} bytes, {why}; {_FIX}.")


def _read_at_most(stream, data: bytearray, limit: int, path, why: str) -> bytearray:
    """Append the rest of ``stream`` to ``data``; DataError once it exceeds ``limit`` bytes.

    Reads in chunks, never more than one byte past ``limit`` in all (enough to see that
    there is too much), so memory stays bounded whatever the stream would decompress to.
    ``why`` says where the limit comes from.
    """
    while len(data) <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - len(data)))
        if not chunk:
            return data
        data += chunk
    raise DataError(f"{path}: decompresses to more than {limit} bytes, {why}; {_FIX}.")


def _read_bytes(path, limit: int, why: str) -> bytearray:
    """The content of ``path``, gunzipped if it is gzip data (whatever its name).

    Raises DataError, without reading further, as soon as the content exceeds ``limit``
    bytes (``why``: the size the file may have); an uncompressed file larger than that is
    refused from its size, unread.
    """
    with _content_stream(path) as (stream, size):
        _check_size(path, size, limit, why)
        return _read_at_most(stream, bytearray(), limit, path, why)


def _idx_layout(data, path) -> tuple[int, tuple]:
    """``(header size, dims)`` from the first bytes of IDX content (unsigned-byte type only)."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number "
                        f"{bytes(data[:4]).hex() or 'none'}, expected 0000080N); {_FIX}.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header truncated; {_FIX}.")
    return header, tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))


def _parse_idx(data, path) -> np.ndarray:
    """Parse IDX bytes into a read-only uint8 array, checking the sizes."""
    header, dims = _idx_layout(data, path)
    if len(data) - header != math.prod(dims):
        raise DataError(f"{path}: IDX payload is {len(data) - header} bytes but its header "
                        f"declares shape {dims} ({math.prod(dims)} bytes); {_FIX}.")
    array = np.frombuffer(data, np.uint8, offset=header).reshape(dims)
    array.flags.writeable = False
    return array


def _read_idx_bytes(path) -> bytearray:
    """The content of IDX file ``path``, never read past the size its header declares.

    The header (magic number, then 4 bytes per dimension) is read first; then at most the
    payload it declares, plus one byte to detect excess content.
    """
    with _content_stream(path) as (stream, size):
        data = bytearray(stream.read(4))
        if len(data) == 4 and 1 <= data[3] <= 4:  # else _idx_layout reports a bad magic
            data += stream.read(4 * data[3])
        header, dims = _idx_layout(data, path)
        limit = header + math.prod(dims)
        why = f"the size its header declares (shape {dims})"
        _check_size(path, size, limit, why)
        return _read_at_most(stream, data, limit, path, why)


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array; raise DataError if invalid."""
    return _parse_idx(_read_idx_bytes(path), path)


def _verified_bytes(path, name: str, base: str) -> bytearray:
    """Decompressed content of ``path``, at most the real file's size, checked by SHA-256."""
    data = _read_bytes(path, IDX_SIZES[base], f"the size of the real {name} {base}")
    actual, expected = hashlib.sha256(data).hexdigest(), SHA256[name][base]
    if actual != expected:
        raise DataError(f"{path}: checksum mismatch for {name} {base} (SHA-256 of the "
                        f"decompressed content: expected {expected}, got {actual}); {_FIX}.")
    return data


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays, so a batch file cannot run code.

    ``find_class`` accepts exact ``(module, name)`` pairs only, checked before anything is
    imported; any other global raises a DataError naming ``path`` and the global.
    """

    # Every global a pickled numpy array needs, and no more: the real batches (Python 2,
    # numpy 1.x) use numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype;
    # numpy 1.x / 2.x pickles (protocols 2 to 5) also use scalar and _frombuffer (protocol
    # 5), under numpy.core or numpy._core; Python 3 pickles bytes with _codecs.encode
    # (protocol 2).
    ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    })

    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"{self.path}: unexpected global {module}.{name} in the pickle, "
                        "refused: a CIFAR-10 python batch only needs the globals of numpy "
                        f"arrays, and unpickling any other could run code; {_FIX}.")


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``(N, 32, 32, 3)`` uint8 images, ``(N,)`` labels."""
    path = pathlib.Path(path)
    try:
        if not path.is_file():
            raise DataError(f"missing file {path}: put the cifar-10-batches-py files there, "
                            "or point data_dir / SUPERMASK_DATA at a folder holding them.")
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, path).load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except DataError:
        raise
    except PermissionError:
        raise _permission_denied(path) from None
    except Exception as exc:  # pickle/EOF/key/type errors: all mean a bad batch file
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: "
                        f"{exc}); {_FIX}.") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 "
                        f"(N, 3072); {_FIX}.")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels; {_FIX}.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


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
    name = _canonical(name)
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
