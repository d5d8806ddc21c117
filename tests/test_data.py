"""Tests of supermask.data: the catalogue, real MNIST / Fashion-MNIST, bad files, CIFAR-10, downloads.

The real-data tests read ``$SUPERMASK_DATA`` (a parent folder with ``mnist/`` and
``fashion-mnist/``) and are skipped without it. Everything else runs on small files the
tests write themselves; downloads go through the real ``keras.utils.get_file`` with
``file://`` URLs, so no network is used.
"""

import ast
import builtins
import gzip
import hashlib
import io
import os
import pathlib
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import textwrap
import tracemalloc

import numpy as np
import pytest

from supermask import data
from supermask.data import catalog, checksums, formats, sources
from supermask.errors import ConfigError, DataError

# Published figures: decompressed MD5s and sanity statistics (shared data README).
PUBLISHED_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
SUBDIR = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}
GUIDANCE = "point data_dir / SUPERMASK_DATA"


def _shared_folder(name):
    root = os.environ.get("SUPERMASK_DATA")
    if not root:
        pytest.skip("SUPERMASK_DATA is not set: no real MNIST/Fashion-MNIST files to test on")
    folder = pathlib.Path(root) / SUBDIR[name]
    if not all((folder / f"{base}.gz").is_file() for base in data.IDX_FILES):
        pytest.skip(f"SUPERMASK_DATA={root} has no {SUBDIR[name]}/ folder with the IDX files")
    return folder


@pytest.fixture(scope="module")
def mnist_dir():
    return _shared_folder("mnist")


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return data.load_dataset("mnist", data_dir=mnist_dir.parent)


@pytest.fixture(scope="module")
def fashion():
    return data.load_dataset("fashion-mnist", data_dir=_shared_folder("fashion_mnist").parent)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's real cache; SUPERMASK_DATA stays as given."""
    monkeypatch.setenv("SUPERMASK_CACHE", str(tmp_path / "default-cache"))


def write_idx(path, array, gz=True, code=0x08):
    """Write ``array`` (uint8) as an IDX file, gzipped if ``gz``."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.tobytes()
    pathlib.Path(path).write_bytes(gzip.compress(raw) if gz else raw)
    return raw


def write_tiny_mnist(folder, monkeypatch, n_train=12, n_test=4, gz=True, labels=None):
    """Write a small well-formed MNIST-like dataset and pin its hashes in data.SHA256."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10 if labels is None else labels,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    hashes = {}
    for base, array in arrays.items():
        raw = write_idx(folder / (f"{base}.gz" if gz else base), array, gz=gz)
        hashes[base] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setitem(data.SHA256, "mnist", hashes)
    return {k: np.asarray(v, np.uint8) for k, v in arrays.items()}


def write_cifar_batch(path, images_chw, labels):
    """Write a batch in the canonical CIFAR-10 python-pickle format."""
    batch = {b"batch_label": b"test batch", b"labels": [int(v) for v in labels],
             b"data": images_chw.reshape(len(images_chw), 3072),
             b"filenames": [b"img%d.png" % i for i in range(len(labels))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_tiny_cifar(folder, per_batch=4):
    """Write data_batch_1..5 and test_batch; return {file: (images CHW, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    written = {}
    for i, name in enumerate(data.CIFAR_FILES):
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = (np.arange(per_batch) + i) % 10
        write_cifar_batch(folder / name, images, labels)
        written[name] = (images, labels)
    return written


def assert_data_error(excinfo, path, *fragments):
    message = str(excinfo.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


# --- the catalogue ---------------------------------------------------------------------

def test_catalogue_lists_each_dataset_once_everywhere():
    assert data.DATASETS == ("mnist", "fashion_mnist", "cifar10")
    for table in (data.INPUT_SHAPES, data.NUM_CLASSES, data.TRAIN_EXAMPLES):
        assert tuple(table) == data.DATASETS
    assert data.INPUT_SHAPES == {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
    assert data.NUM_CLASSES == {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}
    assert data.TRAIN_EXAMPLES == {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
    assert data.VALIDATION_SIZE == 5000


def test_train_sizes_agree_with_the_pinned_files():
    # train-images: 16-byte header + 60000 images of 28 * 28 = 784 bytes; labels: 8 + 60000.
    assert (data.IDX_SIZES["train-images-idx3-ubyte"] - 16) // 784 == 60000 == data.TRAIN_EXAMPLES["mnist"]
    assert data.IDX_SIZES["train-labels-idx1-ubyte"] - 8 == 60000
    assert len(data.CIFAR_FILES[:5]) * 10000 == 50000 == data.TRAIN_EXAMPLES["cifar10"]  # 5 batches of 10000


@pytest.mark.parametrize("name, validation_size, expected", [
    ("mnist", 5000, 55000),
    ("mnist", 0, 60000),
    ("fashion_mnist", 5000, 55000),
    ("Fashion-MNIST", 10000, 50000),
    ("cifar10", 5000, 45000),
    (" CIFAR10 ", 49999, 1),
    ("mnist", np.int64(59999), 1),
])
def test_train_examples(name, validation_size, expected):
    assert data.train_examples(name, validation_size) == expected
    assert type(data.train_examples(name, validation_size)) is int


def test_train_examples_default_holds_out_5000():
    assert data.train_examples("mnist") == 55000 and data.train_examples("cifar10") == 45000


def test_train_examples_matches_a_real_load(mnist):
    assert data.train_examples("mnist", data.VALIDATION_SIZE) == len(mnist.x_train)


@pytest.mark.parametrize("name, validation_size, fragments", [
    ("mnist", 60000, ("validation_size=60000", "smaller than the 60000 training images of mnist")),
    ("fashion-mnist", 70000, ("smaller than the 60000 training images of fashion_mnist",)),
    ("cifar10", 50000, ("validation_size=50000", "smaller than the 50000 training images of cifar10")),
    ("mnist", -1, ("validation_size must be an integer >= 0, got -1",)),
    ("mnist", 2.5, ("integer >= 0, got 2.5",)),
    ("mnist", True, ("integer >= 0, got True",)),
    ("mnist", "5000", ("integer >= 0, got '5000'",)),
    ("mnist", None, ("integer >= 0, got None",)),
    ("imagenet", 5000, ("unknown dataset 'imagenet'", "mnist, fashion_mnist, cifar10")),
    (None, 5000, ("unknown dataset None",)),
    ("arrays:0123456789ab", 5000, ("'arrays:0123456789ab'", "Python API", "not in the catalogue")),
])
def test_train_examples_errors_are_one_line(name, validation_size, fragments):
    with pytest.raises(ConfigError) as excinfo:
        data.train_examples(name, validation_size)
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_canonical_name_and_in_memory():
    assert data.canonical_name("Fashion-MNIST") == "fashion_mnist"
    assert data.canonical_name(" mnist ") == "mnist"
    assert data.canonical_name("CIFAR10") == "cifar10"
    for bad in ("cifar-100", "", 10):
        with pytest.raises(ConfigError, match="unknown dataset"):
            data.canonical_name(bad)
    assert data.is_in_memory("arrays:0123456789ab") and not data.is_in_memory("mnist")
    assert not data.is_in_memory(None)
    ds = data.from_arrays((np.zeros((4, 2)), np.arange(4) % 2), (np.ones((2, 2)), [0, 1]), validation_size=1)
    assert data.is_in_memory(ds.name)


def test_catalogue_imports_only_the_standard_library_and_errors():
    tree = ast.parse(pathlib.Path(catalog.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "operator", "supermask.errors"}


# --- real MNIST / Fashion-MNIST --------------------------------------------------------

def test_mnist_split_shapes_and_scaling(mnist):
    assert (len(mnist.x_train), len(mnist.x_val), len(mnist.x_test)) == (55000, 5000, 10000)
    assert mnist.x_train.shape[1:] == mnist.input_shape == (28, 28, 1)
    assert mnist.num_classes == 10
    for x, y in ((mnist.x_train, mnist.y_train), (mnist.x_val, mnist.y_val),
                 (mnist.x_test, mnist.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int32 and len(x) == len(y)
        assert x.min() == 0.0 and x.max() == 1.0


def test_mnist_matches_published_figures(mnist):
    pixels = len(mnist.x_train) + len(mnist.x_val)
    mean = (mnist.x_train.sum(dtype=np.float64) + mnist.x_val.sum(dtype=np.float64)) / (
        pixels * 784)
    assert mean == pytest.approx(0.1307, abs=1e-4)
    counts = np.bincount(np.concatenate([mnist.y_train, mnist.y_val]), minlength=10)
    assert counts.tolist() == MNIST_TRAIN_COUNTS


def test_validation_is_last_5000_training_images(mnist, mnist_dir):
    raw_x = data.read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    raw_y = data.read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    assert raw_x.shape == (60000, 28, 28) and raw_x.dtype == np.uint8
    np.testing.assert_array_equal(np.rint(mnist.x_val[..., 0] * 255), raw_x[-5000:])
    np.testing.assert_array_equal(mnist.y_val, raw_y[-5000:])
    np.testing.assert_array_equal(np.rint(mnist.x_train[:3, ..., 0] * 255), raw_x[:3])
    np.testing.assert_array_equal(mnist.y_train, raw_y[:55000])


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_decompressed_files_are_canonical_and_pinned(name):
    folder = _shared_folder(name)
    for base, md5 in PUBLISHED_MD5[name].items():
        content = gzip.decompress((folder / f"{base}.gz").read_bytes())
        assert hashlib.md5(content).hexdigest() == md5
        assert hashlib.sha256(content).hexdigest() == data.SHA256[name][base]


def test_fashion_mnist(fashion):
    assert fashion.name == "fashion_mnist"
    assert (len(fashion.x_train), len(fashion.x_val), len(fashion.x_test)) == (55000, 5000, 10000)
    assert fashion.input_shape == (28, 28, 1) and fashion.x_test.dtype == np.float32
    full = np.concatenate([fashion.y_train, fashion.y_val])
    assert np.bincount(full, minlength=10).tolist() == [6000] * 10
    mean = (fashion.x_train.sum(dtype=np.float64) + fashion.x_val.sum(dtype=np.float64)) / (
        60000 * 784)
    assert mean == pytest.approx(0.2860, abs=1e-4)
    assert np.bincount(fashion.y_test, minlength=10).tolist() == [1000] * 10


def test_both_layouts_and_env_resolve(mnist_dir, monkeypatch, tmp_path):
    parent = mnist_dir.parent
    assert data.resolve_source("mnist", data_dir=parent) == mnist_dir
    assert data.resolve_source("mnist", data_dir=mnist_dir) == mnist_dir
    fashion_dir = data.resolve_source("fashion-mnist", data_dir=parent)
    assert fashion_dir.name in ("fashion-mnist", "fashion_mnist")
    monkeypatch.setenv("SUPERMASK_DATA", str(mnist_dir))
    assert data.resolve_source("mnist", cache_dir=tmp_path, download=False) == mnist_dir
    # A folder named "mnist" is never taken for Fashion-MNIST (same file names).
    with pytest.raises(DataError) as excinfo:
        data.resolve_source("fashion_mnist", cache_dir=tmp_path, download=False)
    assert "SUPERMASK_DATA" in str(excinfo.value)


# --- bad inputs ------------------------------------------------------------------------

def test_unknown_dataset_name():
    with pytest.raises(ConfigError) as excinfo:
        data.load_dataset("imagenet")
    assert all(name in str(excinfo.value) for name in data.DATASETS)
    assert isinstance(excinfo.value, ValueError)


def test_explicit_empty_data_dir_does_not_fall_through(tmp_path, monkeypatch):
    def no_download(**kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(sources, "_get_file", no_download)
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", data_dir=tmp_path)
    assert_data_error(excinfo, tmp_path, "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def test_nothing_found_without_download(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SUPERMASK_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("cifar10", cache_dir=tmp_path / "cache", download=False)
    assert_data_error(excinfo, tmp_path / "cache", "SUPERMASK_DATA", "data_batch_1", "data_dir")


def test_env_without_dataset_falls_through_to_cache(tmp_path, monkeypatch):
    arrays = write_tiny_mnist(tmp_path / "cache" / "mnist", monkeypatch)
    (tmp_path / "elsewhere").mkdir()  # a folder, but without MNIST
    monkeypatch.setenv("SUPERMASK_DATA", str(tmp_path / "elsewhere"))
    ds = data.load_dataset("mnist", cache_dir=tmp_path / "cache", validation_size=2,
                           download=False)
    np.testing.assert_array_equal(ds.y_val, arrays["train-labels-idx1-ubyte"][-2:])


def test_tiny_uncompressed_dataset_and_validation_sizes(tmp_path, monkeypatch):
    arrays = write_tiny_mnist(tmp_path, monkeypatch, gz=False)
    ds = data.load_dataset("mnist", data_dir=tmp_path, validation_size=0)
    assert ds.x_val.shape == (0, 28, 28, 1) and ds.y_val.shape == (0,)
    np.testing.assert_allclose(ds.x_test[..., 0] * 255, arrays["t10k-images-idx3-ubyte"],
                               atol=1e-4)
    for bad in (-1, 12, 13, 2.5, True):
        with pytest.raises(ConfigError, match="validation_size"):
            data.load_dataset("mnist", data_dir=tmp_path, validation_size=bad)


def test_missing_file(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path, monkeypatch)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", data_dir=tmp_path)
    assert_data_error(excinfo, tmp_path / "t10k-labels-idx1-ubyte.gz", "missing", GUIDANCE)


def test_truncated_gzip(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path, monkeypatch)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    for call in (data.read_idx, lambda _: data.load_dataset("mnist", data_dir=tmp_path)):
        with pytest.raises(DataError) as excinfo:
            call(path)
        assert_data_error(excinfo, path, "truncated", GUIDANCE)


@pytest.mark.parametrize("header, payload, expected", [
    (bytes([0, 0, 0x09, 1]) + (3).to_bytes(4, "big"), b"\x01\x02\x03", "magic"),
    (bytes([1, 2, 3, 4]), b"", "magic"),
    (b"\0\0", b"", "magic"),
    (bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big"), b"", "header truncated"),
    (bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big"), bytes(9), "payload"),
    (bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big"), bytes(11), "more than 18 bytes"),
])
def test_corrupt_idx(tmp_path, header, payload, expected):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(header + payload))
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    assert_data_error(excinfo, path, expected, GUIDANCE)


def test_read_idx_valid(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.idx", array, gz=False)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x.idx"), array)


def test_checksum_mismatch_on_altered_real_labels(mnist_dir, tmp_path):
    for base in data.IDX_FILES:
        os.symlink(mnist_dir / f"{base}.gz", tmp_path / f"{base}.gz")
    labels = data.read_idx(mnist_dir / "train-labels-idx1-ubyte.gz").copy()
    labels[0] = (labels[0] + 1) % 10  # still a well-formed IDX file with valid labels
    altered = tmp_path / "train-labels-idx1-ubyte.gz"
    altered.unlink()
    raw = write_idx(altered, labels)
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", data_dir=tmp_path)
    assert_data_error(excinfo, altered, "checksum", data.SHA256["mnist"]["train-labels-idx1-ubyte"],
                      hashlib.sha256(raw).hexdigest(), GUIDANCE)


def test_labels_out_of_range_and_count_mismatch(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path / "a", monkeypatch, labels=np.r_[np.arange(11) % 10, 10])
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", data_dir=tmp_path / "a", validation_size=2)
    assert_data_error(excinfo, tmp_path / "a" / "train-labels-idx1-ubyte.gz", "0..9", GUIDANCE)
    write_tiny_mnist(tmp_path / "b", monkeypatch, labels=np.arange(11) % 10)
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", data_dir=tmp_path / "b", validation_size=2)
    assert_data_error(excinfo, tmp_path / "b" / "train-labels-idx1-ubyte.gz", "12 images")


# --- CIFAR-10 --------------------------------------------------------------------------

def test_cifar_batch_layout_and_normalisation(tmp_path):
    written = write_tiny_cifar(tmp_path / "cifar-10-batches-py")
    images, labels = data.read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_2")
    chw, expected_labels = written["data_batch_2"]
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected_labels)
    flat = chw.reshape(4, 3072)
    # Pixel (row 5, col 7) of channel 2 is stored at 2*1024 + 5*32 + 7 in the flat row.
    assert images[3, 5, 7, 2] == flat[3, 2 * 1024 + 5 * 32 + 7]
    assert images[1, 31, 0, 0] == flat[1, 31 * 32]

    ds = data.load_dataset("cifar10", data_dir=tmp_path, validation_size=4)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (16, 4, 4)
    assert ds.input_shape == (32, 32, 3) and ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int32
    val_chw, val_labels = written["data_batch_5"]  # validation = the last training images
    np.testing.assert_array_equal(ds.y_val, val_labels)
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    expected = (val_chw.transpose(0, 2, 3, 1) / 255.0 - mean) / std
    np.testing.assert_allclose(ds.x_val, expected, rtol=1e-5, atol=1e-5)
    test_chw, test_labels = written["test_batch"]
    np.testing.assert_allclose(ds.x_test[..., 1], (test_chw[:, 1] / 255 - mean[1]) / std[1],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.y_test, test_labels)
    # The batch folder itself also works as data_dir.
    direct = data.load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py",
                               validation_size=0)
    assert len(direct.x_train) == 20 and len(direct.x_val) == 0


def _pickled(obj):
    return pickle.dumps(obj, protocol=2)


@pytest.mark.parametrize("content, expected", [
    (b"not a pickle at all", "not a CIFAR-10 python batch"),
    (_pickled({b"data": np.zeros((4, 3072), np.uint8)}), "not a CIFAR-10 python batch"),
    (_pickled({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 4}), "not a CIFAR"),
    (_pickled({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}), "3 labels"),
    (_pickled({b"data": np.zeros((4, 3071), np.uint8), b"labels": [0] * 4}), "3072"),
    (_pickled({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}), "0..9"),
    (b"cos\nsystem\n(S'echo pwned'\ntR.", "unexpected global os.system"),
    (_pickled({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 4})[:60], "not a"),
])
def test_corrupt_cifar_batch(tmp_path, content, expected):
    folder = tmp_path / "cifar-10-batches-py"
    write_tiny_cifar(folder)
    bad = folder / "data_batch_3"
    bad.write_bytes(content)
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("cifar10", data_dir=tmp_path, validation_size=4)
    assert_data_error(excinfo, bad, expected, GUIDANCE)


# --- downloads (real keras.utils.get_file, file:// URLs) -------------------------------

def test_download_mnist_into_cache(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERMASK_DATA", raising=False)
    monkeypatch.setitem(data.URLS, "mnist", mnist_dir.as_uri() + "/")
    cache = tmp_path / "cache"
    ds = data.load_dataset("mnist", cache_dir=cache)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (55000, 5000, 10000)
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(
        f"{base}.gz" for base in data.IDX_FILES)
    # Second time: the cache is used, the (now unreachable) mirror is not.
    monkeypatch.setitem(data.URLS, "mnist", (tmp_path / "gone").as_uri() + "/")
    assert data.resolve_source("mnist", cache_dir=cache) == cache / "mnist"


@pytest.mark.parametrize("corruption", ["altered", "truncated"])
def test_corrupt_download_is_deleted(mnist_dir, tmp_path, monkeypatch, corruption):
    monkeypatch.delenv("SUPERMASK_DATA", raising=False)
    mirror = tmp_path / "mirror"
    shutil.copytree(mnist_dir, mirror)
    labels = mirror / "train-labels-idx1-ubyte.gz"
    labels.chmod(0o644)
    if corruption == "altered":
        content = data.read_idx(labels).copy()
        content[-1] = (content[-1] + 1) % 10
        write_idx(labels, content)
    else:
        labels.write_bytes(labels.read_bytes()[:1000])
    monkeypatch.setitem(data.URLS, "mnist", mirror.as_uri() + "/")
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", cache_dir=cache)
    cached = cache / "mnist" / "train-labels-idx1-ubyte.gz"
    assert_data_error(excinfo, cached, GUIDANCE)
    assert not cached.exists()
    assert (cache / "mnist" / "train-images-idx3-ubyte.gz").exists()  # verified, kept


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERMASK_DATA", raising=False)
    monkeypatch.setitem(data.URLS, "fashion_mnist", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("fashion_mnist", cache_dir=tmp_path / "cache")
    assert_data_error(excinfo, tmp_path / "nowhere", "SUPERMASK_DATA", "data_dir")
    assert not any((tmp_path / "cache" / "fashion-mnist").iterdir())


def test_download_cifar_archive(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERMASK_DATA", raising=False)
    written = write_tiny_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setitem(data.URLS, "cifar10", archive.as_uri())
    cache = tmp_path / "cache"
    # With the real archive's pinned hash, our fake archive is rejected and not kept.
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("cifar10", cache_dir=cache, validation_size=4)
    assert "hash" in str(excinfo.value) and not (cache / "cifar10_archive").exists()
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(sources, "CIFAR_ARCHIVE_SHA256", sha)
    ds = data.load_dataset("cifar10", cache_dir=cache, validation_size=4)
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][1])
    assert data.resolve_source("cifar10", cache_dir=cache, download=False) == (
        cache / "cifar10" / "cifar-10-batches-py")


# --- CIFAR-10 unpickler allowlist ------------------------------------------------------

def _global_pickle(module, name, protocol):
    """A pickle calling ``module.name()`` with no arguments, built opcode by opcode.

    Protocol 2 names the global with GLOBAL, protocol 4 with STACK_GLOBAL. It is only ever
    given to the unpickler under test, never to ``pickle.load``.
    """
    if protocol == 2:
        ref = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    else:
        ref = b"".join(b"\x8c" + bytes([len(part)]) + part.encode()
                       for part in (module, name)) + b"\x93"
    return b"\x80" + bytes([protocol]) + ref + b")R."


def _py2_batch_pickle(flat, labels):
    """A batch as Python 2's cPickle (protocol 2, numpy 1.x) wrote the real CIFAR-10 files:
    str keys and raw data (SHORT_BINSTRING / BINSTRING), numpy.core globals."""
    def string(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def integer(n):
        return b"J" + struct.pack("<i", n)

    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"  # _reconstruct(
             + integer(0) + b"\x85" + string(b"b") + b"\x87R"  # ndarray, (0,), 'b')
             + b"(" + integer(1) + integer(flat.shape[0]) + integer(flat.shape[1]) + b"\x86"
             + b"cnumpy\ndtype\n" + string(b"u1") + integer(0) + integer(1) + b"\x87R"
             + b"(" + integer(3) + string(b"|") + b"NNN" + integer(-1) + integer(-1)
             + integer(0) + b"tb"  # dtype state
             + b"\x89" + string(flat.tobytes()) + b"tb")  # (1, shape, dtype, False, raw)
    labels_list = b"](" + b"".join(integer(int(v)) for v in labels) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + labels_list + b"u."


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("module, name", [
    ("numpy.f2py.__main__", "dtype"),  # importing it runs f2py
    ("numpy.f2py.__main__", "_reconstruct"),
    ("os", "system"),
    ("builtins", "eval"),
    ("__builtin__", "eval"),
    ("numpy", "load"),
    ("numpy.testing._private.utils", "runstring"),
    ("numpy.core.multiarray", "ndarray"),  # allowed module, other name
    ("numpy", "core.multiarray._reconstruct"),  # dotted name under an allowed module
    ("codecs", "encode"),
    ("builtins", "bytes"),
])
def test_cifar_unpickler_refuses_other_globals(tmp_path, module, name, protocol):
    path = tmp_path / "data_batch_1"
    path.write_bytes(_global_pickle(module, name, protocol))
    modules_before = set(sys.modules)
    with pytest.raises(DataError) as excinfo:
        data.read_cifar_batch(path)
    assert_data_error(excinfo, path, f"unexpected global {module}.{name}", "refused", GUIDANCE)
    assert "numpy.f2py.__main__" not in sys.modules
    assert not {m for m in set(sys.modules) - modules_before if m.startswith("numpy.f2py")}


def test_f2py_main_batch_is_refused_in_load_dataset(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_tiny_cifar(folder)
    bad = folder / "data_batch_1"
    bad.write_bytes(_global_pickle("numpy.f2py.__main__", "dtype", 2))
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("cifar10", data_dir=tmp_path, validation_size=4)
    assert_data_error(excinfo, bad, "unexpected global numpy.f2py.__main__.dtype", GUIDANCE)
    assert "numpy.f2py.__main__" not in sys.modules


class _RecordingUnpickler(pickle.Unpickler):
    """Plain unpickler that records the globals a (trusted) pickle names."""

    def __init__(self, file, seen):
        super().__init__(file, encoding="bytes")
        self.seen = seen

    def find_class(self, module, name):
        self.seen.add((module, name))
        return super().find_class(module, name)


def test_cifar_allowlist_is_what_numpy_pickles_need():
    arrays = [np.zeros((4, 3072), np.uint8), np.arange(5), np.ones((2, 3), np.float32).T,
              np.array(7, np.uint8), np.int64(3), np.array([b"ab"])]
    seen = set()
    for protocol in (2, 3, 4, 5):
        for array in arrays:
            blob = pickle.dumps({b"data": array, b"labels": [1, 2]}, protocol=protocol)
            _RecordingUnpickler(io.BytesIO(blob), seen).load()
            loaded = formats._BatchUnpickler(io.BytesIO(blob), "probe").load()[b"data"]
            np.testing.assert_array_equal(loaded, array)
            assert loaded.dtype == array.dtype
    allowed = formats._BatchUnpickler.ALLOWED
    assert seen <= allowed  # complete under the installed numpy
    # Minimal: every allowed global is one numpy uses, under numpy.core or numpy._core.
    spelled = {(m.replace("numpy._core.", "numpy.core."), n) for m, n in seen}
    assert {(m.replace("numpy._core.", "numpy.core."), n) for m, n in allowed} == spelled


@pytest.mark.parametrize("writer", ["python2", "protocol2", "protocol2-numpy1", "protocol5"])
def test_real_format_batches_load(tmp_path, writer):
    rng = np.random.default_rng(3)
    flat = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    labels = [9, 0, 4]
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": labels, b"data": flat,
             b"filenames": [b"a.png", b"b.png", b"c.png"]}
    if writer == "python2":
        blob = _py2_batch_pickle(flat, labels)
    elif writer == "protocol5":
        blob = pickle.dumps(batch, protocol=5)
    else:
        blob = pickle.dumps(batch, protocol=2)
        if writer == "protocol2-numpy1":  # numpy 1.x spells the module numpy.core
            blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            assert b"numpy.core.multiarray" in blob
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    images, got_labels = data.read_cifar_batch(path)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(images, flat.reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))


# --- size bounds: gzip bombs and oversized files ---------------------------------------

BOMB_ZEROS = 200 << 20  # what the bomb decompresses to after its header: 200 MB of zeros
SMALL_HEADER = bytes([0, 0, 0x08, 2]) + np.array([10, 10], ">u4").tobytes()  # 10x10 payload


def write_bomb(path, header=SMALL_HEADER, zeros=BOMB_ZEROS):
    """Gzip ``header`` + ``zeros`` zero bytes into ``path``, streaming 1 MiB at a time."""
    block = bytes(1 << 20)
    with gzip.GzipFile(path, "wb", compresslevel=9) as out:
        out.write(header)
        for _ in range(zeros // len(block)):
            out.write(block)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A ~200 KB .gz that declares a 10x10 IDX payload and decompresses to 200 MB."""
    return write_bomb(tmp_path_factory.mktemp("bomb") / "t10k-images-idx3-ubyte.gz")


def _run_measured(call, path):
    """Run ``call`` (python source using ``data`` and ``path``) in a fresh interpreter.

    Returns its DataError message ("NO ERROR" if none) and how much its peak RSS grew
    across the call, in KiB.
    """
    script = textwrap.dedent("""
        import resource, sys
        from supermask import data
        from supermask.errors import DataError
        path = sys.argv[1]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        message = "NO ERROR"
        try:
            CALL
        except DataError as exc:
            message = str(exc)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        print(message)
    """).replace("CALL", call)
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                            text=True, timeout=300,
                            cwd=pathlib.Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    growth, message = result.stdout.split("\n", 1)
    return message.strip(), int(growth)


def test_gzip_bomb_is_refused_with_bounded_memory(bomb):
    assert bomb.stat().st_size < 1 << 20
    message, growth_kib = _run_measured("data.read_idx(path)", bomb)
    assert str(bomb) in message and "decompresses to more than 112 bytes" in message, message
    assert "the size its header declares (shape (10, 10))" in message and GUIDANCE in message
    assert growth_kib < 50 * 1024, f"peak memory grew by {growth_kib} KiB"


def test_oversized_uncompressed_idx_is_refused_unread(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(SMALL_HEADER + bytes(100))
    os.truncate(path, 1 << 30)  # sparse: 1 GiB that is never on disk
    message, growth_kib = _run_measured("data.read_idx(path)", path)
    assert str(path) in message and f"is {1 << 30} bytes, more than 112 bytes" in message
    assert growth_kib < 50 * 1024, f"peak memory grew by {growth_kib} KiB"


def test_bomb_named_like_real_file_is_refused_before_checksum(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path, monkeypatch)
    labels = write_bomb(tmp_path / "train-labels-idx1-ubyte.gz",
                        header=bytes([0, 0, 0x08, 1]) + np.array([60000], ">u4").tobytes())
    hashed = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda b: hashed.append(len(b)) or real_sha256(b))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as excinfo:
            data.load_dataset("mnist", data_dir=tmp_path, validation_size=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_data_error(excinfo, labels, "decompresses to more than 60008 bytes",
                      "the size of the real mnist train-labels-idx1-ubyte", GUIDANCE)
    assert "checksum" not in str(excinfo.value)
    assert hashed == [12 * 784 + 16]  # only the (valid) train images were hashed
    assert peak < 50 << 20


def test_oversized_uncompressed_real_file_is_refused_unread(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path, monkeypatch, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    os.truncate(labels, 1 << 30)
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", data_dir=tmp_path, validation_size=2)
    assert_data_error(excinfo, labels, f"is {1 << 30} bytes, more than 10008 bytes",
                      "the size of the real mnist t10k-labels-idx1-ubyte", GUIDANCE)


def test_real_sizes_are_pinned():
    for name in ("mnist", "fashion_mnist"):
        folder = _shared_folder(name)
        for base in data.IDX_FILES:
            with gzip.open(folder / f"{base}.gz") as f:
                assert sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b"")) == (
                    data.IDX_SIZES[base]), base


def test_streamed_read_matches_full_decompression(mnist_dir):
    path = mnist_dir / "t10k-images-idx3-ubyte.gz"
    full = gzip.decompress(path.read_bytes())
    array = data.read_idx(path)
    assert array.shape == (10000, 28, 28) and not array.flags.writeable
    assert array.tobytes() == full[16:]
    assert bytes(checksums._verified_bytes(path, "mnist", "t10k-images-idx3-ubyte")) == full


# --- permissions -----------------------------------------------------------------------

PERMISSION = ("permission denied", "chmod", GUIDANCE)


def deny_open(monkeypatch, denied):
    """Make the file readers' ``open`` (supermask.data.formats) raise PermissionError for ``denied``."""
    def fake_open(file, *args, **kwargs):
        if pathlib.Path(file) == denied:
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(formats, "open", fake_open, raising=False)


def deny_listing(monkeypatch, denied):
    """Make ``os.access`` say that the folder ``denied`` cannot be listed."""
    real_access = os.access

    def fake_access(path, mode, *args, **kwargs):
        if pathlib.Path(path) == denied:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", fake_access)


def test_unreadable_idx_file_is_a_permission_error(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path, monkeypatch)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    deny_open(monkeypatch, path)
    for call in (data.read_idx, lambda _: data.load_dataset("mnist", data_dir=tmp_path,
                                                            validation_size=2)):
        with pytest.raises(DataError) as excinfo:
            call(path)
        assert_data_error(excinfo, path, f"cannot read {path}", *PERMISSION)
        assert "corrupt" not in str(excinfo.value)


def test_unreadable_cifar_batch_is_a_permission_error(tmp_path, monkeypatch):
    write_tiny_cifar(tmp_path)
    path = tmp_path / "test_batch"
    deny_open(monkeypatch, path)
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("cifar10", data_dir=tmp_path, validation_size=4)
    assert_data_error(excinfo, path, f"cannot read {path}", *PERMISSION)
    assert "not a CIFAR" not in str(excinfo.value)


@pytest.mark.parametrize("where", ["data_dir", "subfolder", "SUPERMASK_DATA"])
def test_unlistable_folder_is_a_permission_error(tmp_path, monkeypatch, where):
    root = tmp_path / "data"
    denied = root / "mnist" if where == "subfolder" else root
    denied.mkdir(parents=True)
    deny_listing(monkeypatch, denied)
    with pytest.raises(DataError) as excinfo:
        if where == "SUPERMASK_DATA":
            monkeypatch.setenv("SUPERMASK_DATA", str(root))
            data.resolve_source("mnist", cache_dir=tmp_path / "cache", download=False)
        else:
            data.resolve_source("mnist", data_dir=root)
    assert_data_error(excinfo, denied, f"cannot list {denied}", *PERMISSION)
    assert "holds no" not in str(excinfo.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their mode")
def test_chmod_000_is_a_permission_error(tmp_path, monkeypatch):
    write_tiny_mnist(tmp_path / "files", monkeypatch)
    path = tmp_path / "files" / "train-labels-idx1-ubyte.gz"
    path.chmod(0)
    try:
        with pytest.raises(DataError) as excinfo:
            data.load_dataset("mnist", data_dir=tmp_path / "files", validation_size=2)
        assert_data_error(excinfo, path, f"cannot read {path}", *PERMISSION)
    finally:
        path.chmod(0o644)
    folder = tmp_path / "files"
    folder.chmod(0)
    try:
        with pytest.raises(DataError) as excinfo:
            data.load_dataset("mnist", data_dir=folder, validation_size=2)
        assert_data_error(excinfo, folder, f"cannot list {folder}", *PERMISSION)
    finally:
        folder.chmod(0o755)


# --- SUPERMASK_DATA --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "missing"])
def test_supermask_data_must_be_a_folder(tmp_path, monkeypatch, kind):
    target = tmp_path / ("a-file" if kind == "file" else "no-such-folder")
    if kind == "file":
        target.write_text("not a folder")
    write_tiny_mnist(tmp_path / "cache" / "mnist", monkeypatch)  # never silently used
    monkeypatch.setenv("SUPERMASK_DATA", str(target))
    with pytest.raises(DataError) as excinfo:
        data.load_dataset("mnist", cache_dir=tmp_path / "cache", validation_size=2)
    assert_data_error(excinfo, f"SUPERMASK_DATA={target} is not a folder",
                      "it is a file" if kind == "file" else "nothing exists there",
                      "set it to a folder holding the dataset files", "cifar-10-batches-py/",
                      "or unset it")


def test_explicit_data_dir_ignores_supermask_data(tmp_path, monkeypatch):
    arrays = write_tiny_mnist(tmp_path / "files", monkeypatch)
    monkeypatch.setenv("SUPERMASK_DATA", str(tmp_path / "no-such-folder"))
    ds = data.load_dataset("mnist", data_dir=tmp_path / "files", validation_size=2)
    np.testing.assert_array_equal(ds.y_val, arrays["train-labels-idx1-ubyte"][-2:])


def test_empty_supermask_data_counts_as_unset(tmp_path, monkeypatch):
    arrays = write_tiny_mnist(tmp_path / "cache" / "mnist", monkeypatch)
    monkeypatch.setenv("SUPERMASK_DATA", "")
    ds = data.load_dataset("mnist", cache_dir=tmp_path / "cache", validation_size=2,
                           download=False)
    np.testing.assert_array_equal(ds.y_val, arrays["train-labels-idx1-ubyte"][-2:])
    with pytest.raises(DataError) as excinfo:
        data.resolve_source("cifar10", cache_dir=tmp_path / "cache", download=False)
    assert "looked in the cache" in str(excinfo.value)


def test_supermask_data_without_this_dataset_falls_back_to_cache(tmp_path, monkeypatch):
    shared = tmp_path / "shared"  # like ../shared/data: MNIST but no CIFAR-10
    write_tiny_mnist(shared / "mnist", monkeypatch)
    written = write_tiny_cifar(tmp_path / "cache" / "cifar-10-batches-py")
    monkeypatch.setenv("SUPERMASK_DATA", str(shared))
    assert data.resolve_source("mnist", download=False) == shared / "mnist"
    ds = data.load_dataset("cifar10", cache_dir=tmp_path / "cache", validation_size=4,
                           download=False)
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][1])
