"""Atomic reading and writing of results, output checks, and run locks.

Every write goes to a temporary file in the destination folder and is then renamed
over the destination (``os.replace``, atomic on POSIX), so a process killed at any
instant leaves either the old file, the new file, or no file, never a partial one.
A whole run folder is built the same way (``atomic_dir``) and, when it replaces an
existing one, swapped in with one ``renameat2(RENAME_EXCHANGE)`` where the kernel and
file system allow it.

A failed write (disk full, read-only file system...) raises ``StorageError`` naming the
path, after removing its temporary; ``check_output_dir`` / ``check_output_file`` find a
bad output location before any work starts; ``exclusive_lock`` lets one process at a
time run an experiment trial or write a run folder (``fcntl.flock``: the kernel releases
it when the process dies, so ``kill -9`` never leaves a stale lock).
"""

import csv
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from supermask.errors import SupermaskError


class StorageError(SupermaskError):
    """An output cannot be written (disk full, read-only, not a folder...)."""


class CorruptFileError(SupermaskError):
    """A results file is missing or unreadable; ``path`` names it."""

    def __init__(self, message, path):
        super().__init__(message)
        self.path = Path(path)


class LockedError(SupermaskError):
    """Another live process holds the lock of a run."""


def _reason(exc):
    """A short human reason for an ``OSError``."""
    return {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))


def _write_error(path, exc):
    """A ``StorageError`` for an ``OSError`` raised while writing ``path``."""
    return StorageError(f"Could not write {path}: {_reason(exc)}. Nothing was half-written; free space or "
                        "fix the location (or choose another one) and rerun.")


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
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise


def _libc_renameat2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.renameat2
    except (OSError, AttributeError):
        return None


_RENAMEAT2 = _libc_renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a, b):
    """Swap the paths ``a`` and ``b`` atomically (Linux ``renameat2``); False where unsupported."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextmanager
def atomic_dir(path, replace=False):
    """Yield a temporary folder beside ``path``; on success it becomes ``path``.

    Without ``replace``, ``path`` must not exist yet. With ``replace``, an existing
    ``path`` is swapped out in one atomic exchange (or, where the file system cannot,
    two renames) and then deleted, so readers see the old folder or the new one, never
    a mix. A process killed inside the block leaves only hidden ``.<name>.*.tmp``
    folders, which ``remove_stale_temporaries`` deletes.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise SupermaskError(f"{path} already exists; it will not be overwritten.")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if replace and path.exists():
            if not exchange(tmp, path):
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old.tmp", dir=path.parent))
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                tmp = old
        else:
            os.replace(tmp, path)
            tmp = None
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)  # the new folder after a failure, else the old one


def remove_dir(path):
    """Delete the folder ``path``: renamed to a hidden temporary first, so it disappears at
    once and a kill midway leaves only a temporary for ``remove_stale_temporaries``."""
    path = Path(path)
    if not path.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old.tmp", dir=path.parent))
    os.replace(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def remove_stale_temporaries(folder, name=None):
    """Delete temporary files and folders left in ``folder`` by a killed process.

    With ``name``, only the temporaries of ``folder/name`` (``.<name>.*.tmp*``). Call it
    only while holding the lock that covers them, so no live writer loses its files.
    """
    pattern = f".{name}.*.tmp*" if name else ".*.tmp*"
    for tmp in Path(folder).glob(pattern):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


# --- output checks, before any work starts ------------------------------------------------


def _nearest_existing(path):
    """``path`` or its closest existing ancestor."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder, what):
    """StorageError unless a file can be created (and removed) in the existing ``folder``."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StorageError(f"Cannot write {what}: {folder} is not writable ({_reason(exc)}). "
                           "Choose another location or fix its permissions.") from None


def check_output_dir(path, what="the output folder", overwrite=None):
    """Fail early, with one clear message, if ``path`` cannot become an output folder.

    Refused: a ``path`` that is a file or lies under a file, or whose nearest existing
    folder is not writable. ``overwrite``: None accepts an existing folder (lottery roots
    are extended); False refuses a non-empty one ("pass --overwrite"); True accepts it.
    Creates nothing.
    """
    path = Path(path)
    existing = _nearest_existing(path)
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == Path(os.path.abspath(path)) else f"lies under the file {existing}"
        raise StorageError(f"Cannot use {path} as {what}: it {where}. Choose a folder path.")
    if overwrite is False and path.is_dir() and any(path.iterdir()):
        raise StorageError(f"{what.capitalize()} {path} already exists and is not empty. Pass --overwrite "
                           "to replace it (it is swapped for the new run only once that is complete), "
                           "or choose another --out.")
    _probe_writable(existing, what)


def check_output_file(path, what="the output file"):
    """Fail early if the file ``path`` cannot be written (a folder, under a file, not writable)."""
    path = Path(path)
    if path.is_dir():
        raise StorageError(f"Cannot write {what} {path}: it is a folder. Give a file name.")
    check_output_dir(path.parent, f"the folder of {what}")


# --- locks ---------------------------------------------------------------------------------


@contextmanager
def exclusive_lock(path, what, rerun="rerun (with --resume for a lottery experiment)"):
    """Hold an exclusive ``flock`` on the file ``path`` for the block, or raise LockedError.

    ``what`` names the locked thing in the message ("trial runs/x/trial_0"), ``rerun`` how to
    continue once it is free. The lock
    file holds the holder's PID, so a second process can say who holds it; the kernel
    drops the lock when the holder exits or is killed, so no stale lock survives.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(f"{what} is in use by another process (PID {holder}). Wait for it to "
                              f"finish, or stop it and {rerun}.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def lock_path(path):
    """The lock file of the run folder ``path``: ``.<name>.lock`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


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
        raise CorruptFileError(f"Missing file {path}.", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} is corrupt: not valid JSON ({exc}).", path) from None


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
        raise CorruptFileError(f"Missing file {path}.", path)
    out = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    except OSError as exc:
        raise CorruptFileError(f"{path} is corrupt: not a readable HDF5 file ({exc}).", path) from None
    return out
