"""Where the raw files of a built-in dataset are: search order, cache, download.

The raw files are taken from, first match wins: 1. ``data_dir`` (an error if it lacks the
dataset); 2. ``$SUPERMASK_DATA``; 3. the cache (``cache_dir``, else ``$SUPERMASK_CACHE``,
else ``~/.cache/supermask/datasets``); 4. a download into the cache with
``keras.utils.get_file`` unless ``download=False``. 1 and 2 may name the folder holding the
files or a parent with per-dataset subfolders (``mnist/``, ``fashion-mnist/`` or
``fashion_mnist/``, ``cifar-10-batches-py/``). ``$SUPERMASK_DATA``, when set and not empty,
must name a folder.

A downloaded MNIST / Fashion-MNIST file is checked against `supermask.data.checksums`
(and deleted if it fails); get_file verifies the CIFAR-10 archive against
`CIFAR_ARCHIVE_SHA256`.
"""

from __future__ import annotations

import os
import pathlib

from supermask.data.catalog import canonical_name
from supermask.data.checksums import _verified_bytes
from supermask.data.formats import CIFAR_FILES, IDX_FILES, _permission_denied
from supermask.errors import DataError

URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}
# SHA-256 of cifar-10-python.tar.gz, as pinned by Keras itself
# (keras/src/datasets/cifar10.py); its MD5 is the published c58f30108f718f92721af3b95e74349a.
CIFAR_ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
# Subfolders of a parent folder (or of the cache) that may hold each dataset.
_SUBDIRS = {
    "mnist": ("mnist",),
    "fashion_mnist": ("fashion-mnist", "fashion_mnist"),
    "cifar10": ("cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
}


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
    name = canonical_name(name)
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
    from keras.utils import get_file  # lazily: only a download needs Keras, a heavy import

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
