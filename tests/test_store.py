"""Atomic writes: a failure mid-write leaves no file and no temporary file behind."""

import numpy as np
import pytest

from supermask import store
from supermask.errors import SupermaskError


def test_arrays_round_trip(tmp_path):
    arrays = {"fc1/kernel": np.arange(6, dtype="float32").reshape(2, 3), "fc1/bias": np.zeros(3),
              "output": np.array([True, False])}
    store.save_arrays(tmp_path / "w.h5", arrays)
    back = store.load_arrays(tmp_path / "w.h5")
    assert set(back) == set(arrays)
    for key in arrays:
        np.testing.assert_array_equal(back[key], arrays[key])
        assert back[key].dtype == arrays[key].dtype


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        store.write_json(tmp_path / "m.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []
    store.write_json(tmp_path / "m.json", {"x": 1})
    with pytest.raises(TypeError):
        store.write_json(tmp_path / "m.json", {"x": object()})
    assert store.read_json(tmp_path / "m.json") == {"x": 1}  # old version intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_corrupt_files_give_clear_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(SupermaskError, match="is corrupt: not valid JSON"):
        store.read_json(tmp_path / "bad.json")
    with pytest.raises(SupermaskError, match="is corrupt: not a readable HDF5 file"):
        store.load_arrays(tmp_path / "bad.h5")
    with pytest.raises(SupermaskError, match="Missing file"):
        store.load_arrays(tmp_path / "none.h5")


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    store.write_json(tmp_path / "m.json", {"x": 1})
    with store.atomic_dir(tmp_path / "level_0") as folder:
        store.write_json(folder / "a.json", {})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "level_0").stat().st_mode & 0o777 == 0o777 & ~umask
