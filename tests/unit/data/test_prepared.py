"""The files of data/prepared/ (`data/prepared.py`): written and read back exactly, and every
way a damaged file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.prepared import Pool, load_pool, write_pool
from pipeline.data.sources import DataError


def tiny_pool() -> Pool:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(15, 5)).astype(np.float32)
    meta = {"dataset": "npz", "n_features": 5, "n_classes": 3, "splits": "per_seed"}
    return Pool(x, rng.integers(0, 3, size=15).astype(np.int64), meta)


def test_write_then_load_round_trips_exactly(tmp_path: Path) -> None:
    pool = tiny_pool()
    out = tmp_path / "prepared"
    write_pool(pool, out)
    loaded = load_pool(out)
    assert loaded.x.dtype == pool.x.dtype and loaded.y.dtype == pool.y.dtype
    assert np.array_equal(loaded.x, pool.x) and np.array_equal(loaded.y, pool.y)
    assert loaded.meta == pool.meta and loaded.digest() == pool.digest()
    # writing again replaces the folder and leaves no staging folder behind
    write_pool(pool, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "pool.npz"]


def test_the_digest_covers_how_splits_are_drawn() -> None:
    pool = tiny_pool()
    fixed = Pool(pool.x, pool.y, {**pool.meta, "splits": "fixed"})
    assert fixed.digest() != pool.digest()


def written(tmp_path: Path) -> Path:
    out = tmp_path / "prepared"
    write_pool(tiny_pool(), out)
    return out


def test_load_pool_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="meta.json missing"):
        load_pool(tmp_path / "nowhere")


def test_load_pool_missing_arrays(tmp_path: Path) -> None:
    out = written(tmp_path)
    (out / "pool.npz").unlink()
    with pytest.raises(DataError, match=r"pool\.npz: missing; run `python -m pipeline prepare`"):
        load_pool(out)


def test_load_pool_garbage_bytes(tmp_path: Path) -> None:
    out = written(tmp_path)
    (out / "pool.npz").write_bytes(b"this is not an npz file at all" * 10)
    with pytest.raises(DataError, match=r"pool\.npz: corrupted"):
        load_pool(out)


def test_load_pool_truncated_file(tmp_path: Path) -> None:
    out = written(tmp_path)
    data = (out / "pool.npz").read_bytes()
    (out / "pool.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"pool\.npz"):
        load_pool(out)


def test_load_pool_refuses_pickled_arrays(tmp_path: Path) -> None:
    out = written(tmp_path)
    objects = np.empty(15, dtype=object)
    objects[:] = [{"a": i} for i in range(15)]
    np.savez(out / "pool.npz", x=objects, y=np.zeros(15, np.int64))
    with pytest.raises(DataError, match=r"pool\.npz: corrupted"):
        load_pool(out)


def test_load_pool_refuses_arrays_that_do_not_match_meta(tmp_path: Path) -> None:
    out = written(tmp_path)
    np.savez(out / "pool.npz", x=np.zeros((3, 5), np.float64), y=np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"pool\.npz: arrays do not match"):
        load_pool(out)
    np.savez(out / "pool.npz", x=np.zeros((3, 6), np.float32), y=np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"pool\.npz: arrays do not match"):
        load_pool(out)


def test_load_pool_corrupt_meta(tmp_path: Path) -> None:
    out = written(tmp_path)
    (out / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match=r"meta\.json: corrupted"):
        load_pool(out)


def test_written_files_are_plain_numpy_and_json(tmp_path: Path) -> None:
    out = written(tmp_path)
    json.loads((out / "meta.json").read_text())
    with np.load(out / "pool.npz", allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["x", "y"]
