"""Atomic reading and writing of results: JSON and HDF5 dicts of numpy arrays.

Every write goes to a temporary file in the destination folder and is then renamed
over the destination (``os.replace``, atomic on POSIX), so a process killed at any
instant leaves either the old file, the new file, or no file, never a partial one.
"""

import csv
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from supermask.errors import SupermaskError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary name keeps ``path``'s suffix (``.<name>.<random>.tmp<suffix>``) for
    writers that insist on one, such as ``model.save`` and ``.keras``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path):
    """Yield a temporary folder beside ``path``; on success rename it to ``path``.

    ``path`` must not exist yet. A process killed inside the block leaves only a hidden
    ``.<name>.*.tmp`` folder, which ``remove_stale_temporaries`` deletes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise SupermaskError(f"{path} already exists; it will not be overwritten.")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder):
    """Delete temporary files and folders left in ``folder`` by a killed process."""
    for tmp in Path(folder).glob(".*.tmp*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def save_model(path, model):
    """Save a Keras model to a ``.keras`` file, atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path, rows):
    """Write a list of dicts (same keys) as CSV with a header, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def read_json(path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SupermaskError(f"Missing file {path}.") from None
    except json.JSONDecodeError as exc:
        raise SupermaskError(f"{path} is not valid JSON ({exc}); delete it and rerun.") from None


def save_arrays(path, arrays):
    """Write ``{"a/b": array}`` to HDF5 (keys with "/" become groups), atomically."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=np.asarray(value))


def load_arrays(path):
    """Read an HDF5 file written by ``save_arrays`` back into ``{"a/b": array}``."""
    path = Path(path)
    if not path.exists():
        raise SupermaskError(f"Missing file {path}.")
    out = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    except OSError as exc:
        raise SupermaskError(f"{path} is not a readable HDF5 file ({exc}); delete it and rerun.") from None
    return out
