"""Dataset sources (`data/sources.py`): scikit-learn's digits read without scikit-learn, a user's
.npz and what it may not hold, and torchvision's files read without a download."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import DataConfig
from pipeline.data.pool import pool_of, prepare
from pipeline.data.sources import DataError, load_npz, load_source
from pipeline.data.splits import draw
from tests.support.data import write_mnist


def test_digits_are_sklearns_digits_as_one_channel_images() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    source = load_source(DataConfig(dataset="digits"))
    x, y = source.x, source.y
    assert source.class_names is None and source.official_test is None
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert np.array_equal(x.reshape(1797, 64), digits.data)
    assert np.array_equal(y, digits.target)


def test_digits_load_without_importing_sklearn() -> None:
    program = (
        "import sys\n"
        "from pipeline.core.config import DataConfig\n"
        "from pipeline.data.sources import load_source\n"
        "load_source(DataConfig(dataset='digits'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def npz_cfg(path: Path) -> DataConfig:
    return DataConfig(dataset="npz", path=str(path))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((5, 3)), "y": np.array([0, 1, 0, 1])}, "same N"),
        ({"x": np.zeros((4, 3)), "y": np.array([0.0, 1.0, 0.5, 1.0])}, "must be integers"),
        ({"x": np.zeros((4, 3))}, "missing array(s) y"),
        ({"y": np.array([0, 1])}, "missing array(s) x"),
        ({"x": np.array([[0.0, np.nan], [1.0, 2.0]]), "y": np.array([0, 1])}, "NaN or infinite"),
        ({"x": np.array([[0.0, np.inf], [1.0, 2.0]]), "y": np.array([0, 1])}, "NaN or infinite"),
        ({"x": np.zeros(4), "y": np.array([0, 1, 0, 1])}, "x must be (N, ...)"),
        ({"x": np.zeros((4, 2)), "y": np.zeros((4, 1), np.int64)}, "y (N,)"),
        ({"x": np.array([["a"], ["b"]]), "y": np.array([0, 1])}, "must be numeric"),
        ({"x": np.zeros((4, 2)), "y": np.array([True, False, True, False])}, "must be integers"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 2, 0, 2])}, "0..C-1"),
        ({"x": np.zeros((4, 2)), "y": np.array([-1, 0, -1, 0])}, "0..C-1"),
        ({"x": np.zeros((4, 2)), "y": np.array([0, 0, 0, 0])}, "at least two classes"),
        ({"x": np.array([[0.0, 1e300], [1.0, 2.0]]), "y": np.array([0, 1])}, "beyond float32"),
    ],
    ids=[
        "length",
        "float-label",
        "no-y",
        "no-x",
        "nan",
        "inf",
        "x-1d",
        "y-2d",
        "strings",
        "bool-labels",
        "class-gap",
        "negative",
        "one-class",
        "float32-overflow",
    ],
)
def test_load_source_npz_rejects(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        load_source(npz_cfg(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_source_npz_accepts_integral_float_labels(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    np.savez(path, x=np.arange(8.0).reshape(4, 2), y=np.array([0.0, 1.0, 1.0, 0.0]))
    source = load_source(npz_cfg(path))
    x, y = source.x, source.y
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 1, 0]
    assert np.array_equal(x, np.arange(8.0).reshape(4, 2))


def test_load_npz_missing_file_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "absent.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00garbage" * 20)
    with pytest.raises(DataError, match=r"bad\.npz: not a readable \.npz"):
        load_npz(bad)


def test_load_npz_refuses_a_single_npy_array(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"x\.npy: a single \.npy array, not an \.npz archive"):
        load_npz(path)


def test_load_npz_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    objects = np.empty(2, dtype=object)
    objects[:] = [{"a": 1}, {"b": 2}]
    np.savez(path, x=objects, y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"pickled\.npz: not a readable"):
        load_npz(path)


def test_load_npz_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.npz"
    np.savez(path, x=np.zeros((10, 3)), y=np.arange(10) % 2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.npz"):
        load_npz(path)


def test_load_source_npz_empty_arrays(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 3)), y=np.zeros(0, np.int64))
    with pytest.raises(DataError):
        load_source(npz_cfg(path))


def test_load_source_npz_scalar_labels(tmp_path: Path) -> None:
    path = tmp_path / "scalar.npz"
    np.savez(path, x=np.zeros((4, 3)), y=np.array(1))
    with pytest.raises(DataError):
        load_source(npz_cfg(path))


def test_torchvision_mnist_read_from_idx_files(tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = write_mnist(tmp_path, n_train=30, n_test=20)
    raw = tmp_path / "MNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").read_bytes()[:4] == b"\x00\x00\x08\x03"
    assert (raw / "train-labels-idx1-ubyte").read_bytes()[:4] == b"\x00\x00\x08\x01"

    source = load_source(DataConfig(dataset="mnist", root=str(tmp_path), download=False))
    x, y = source.x, source.y
    assert x.shape == (50, 1, 28, 28)  # official train/test halves pooled, train first
    assert source.official_test == 20  # the last 20: the official test set
    assert np.array_equal(x[:, 0], np.concatenate([train_x, test_x]))
    assert y.dtype == np.int64
    assert np.array_equal(y, np.concatenate([train_y, test_y]).astype(np.int64))

    # and the whole prepare stage runs on it: 784 flattened features
    prepared = prepare(
        DataConfig(
            dataset="mnist", root=str(tmp_path), download=False, val_fraction=0.2, test_fraction=0.2
        )
    )
    assert prepared.meta["n_features"] == 784 and prepared.meta["n_classes"] == 3
    assert prepared.meta["sizes"] == {"train": 30, "val": 10, "test": 10}
    assert "test_split" not in prepared.meta and "official_test" not in prepared.meta


def test_the_official_test_split_is_the_datasets_own_test_set(tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = write_mnist(tmp_path, n_train=60, n_test=21)
    cfg = DataConfig(
        dataset="mnist",
        root=str(tmp_path),
        download=False,
        test_split="official",
        val_fraction=0.25,
        normalize="none",
    )
    pool = pool_of(cfg)
    assert pool.meta["test_split"] == "official" and pool.meta["official_test"] == 21
    assert pool.meta["test_fraction"] is None  # not used: the test split is given
    assert pool.meta["sizes"] == {"train": 45, "val": 15, "test": 21}
    official = test_x.reshape(21, -1).astype(np.float32)
    for seed in (0, 1):
        drawn = draw(pool, seed)
        # test: the official test set, whole, the same for every seed
        assert np.array_equal(drawn.test.x, official)
        assert np.array_equal(drawn.test.y, test_y.astype(np.int64))
        assert drawn.indices["test"].tolist() == list(range(60, 81))
        # train and val: a stratified split of the official train set only
        rows = np.concatenate([drawn.indices["train"], drawn.indices["val"]])
        assert sorted(rows.tolist()) == list(range(60))
        assert drawn.meta["class_counts"]["val"] == [5, 5, 5]
    # per_seed: each seed its own train/val split of the train set; fixed: one for all
    assert not np.array_equal(draw(pool, 0).indices["val"], draw(pool, 1).indices["val"])
    fixed = pool_of(cfg.model_copy(update={"splits": "fixed"}))
    assert np.array_equal(draw(fixed, 0).indices["val"], draw(fixed, 1).indices["val"])
    # label noise stays in the training split; data.train_size subsamples it
    noisy = pool_of(cfg.model_copy(update={"label_noise": 0.2, "train_size": 30}))
    drawn = draw(noisy, 0)
    assert len(drawn.train.y) == 30 and np.array_equal(drawn.test.y, test_y.astype(np.int64))
    assert (drawn.train.y != noisy.y[drawn.indices["train"]]).sum() == 6


def test_torchvision_missing_files_without_download(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_source(DataConfig(dataset="kmnist", root=str(empty), download=False))
    message = str(info.value)
    assert "kmnist" in message and "data.download" in message and str(empty) in message
