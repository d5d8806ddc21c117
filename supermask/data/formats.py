"""Byte-level readers of the raw files: IDX (MNIST, Fashion-MNIST) and CIFAR-10 python batches.

Decompression is streamed and bounded, so a gzip bomb costs no memory: a file is refused as
soon as its content exceeds the limit it is read with (for `read_idx`, the size its IDX
header declares; for the real files, their size, see `supermask.data.checksums`); an
uncompressed file larger than that is refused from its size alone. CIFAR-10 is the
canonical python version (pickled batches), unpickled with an exact allowlist of the numpy
globals an array needs (any other global is refused before it is imported). Any problem
with a file (missing, not readable for lack of permission, truncated, corrupt, too large)
raises one `DataError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import pathlib
import pickle
import zlib

import numpy as np

from supermask.errors import DataError

# The four files of MNIST and of Fashion-MNIST (each ``.gz`` or not), and CIFAR-10's batches.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

_FIX = ("delete or replace it (a cached copy is downloaded again on the next load), "
        "or point data_dir / SUPERMASK_DATA at a folder holding intact files")
_CHUNK = 1 << 20  # bytes read (decompressed) at a time


def _permission_denied(path, action="read") -> DataError:
    """The DataError for a file or folder this process is not allowed to ``action``."""
    return DataError(f"cannot {action} {path}: permission denied; fix its permissions (chmod) "
                     "or point data_dir / SUPERMASK_DATA elsewhere.")


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
