"""The prepare stage's pool (`data/pool.py`): label noise only in training, normalisation from
the training part only, subsampling, reproducibility, on an .npz made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import DataConfig
from pipeline.data.pool import prepare
from pipeline.data.prepared import SPLITS
from pipeline.data.sources import DataError
from tests.support.data import N_POOL, ids, write_npz


def test_prepare_label_noise_only_in_train(tmp_path: Path) -> None:
    path, x, y = write_npz(tmp_path)
    prepared = prepare(DataConfig(dataset="npz", path=str(path), label_noise=0.3, normalize="none"))
    id_sets = {s: ids(getattr(prepared, s)) for s in SPLITS}
    assert sorted(np.concatenate(list(id_sets.values())).tolist()) == list(range(N_POOL))
    # val and test labels are the clean ones
    assert np.array_equal(prepared.val.y, y[id_sets["val"]])
    assert np.array_equal(prepared.test.y, y[id_sets["test"]])
    # train: exactly round(0.3 · n_train) labels changed, all to another valid class
    changed = prepared.train.y != y[id_sets["train"]]
    n_train = len(prepared.train.y)
    assert changed.sum() == round(0.3 * n_train) == prepared.meta["noisy_labels"]
    assert prepared.train.y.min() >= 0 and prepared.train.y.max() <= 2
    # metadata
    meta = prepared.meta
    assert meta["sizes"] == {"train": 90, "val": 30, "test": 30}
    assert meta["n_classes"] == 3 and meta["n_features"] == 4 and meta["input_shape"] == [4]
    for s in ("val", "test"):
        assert meta["class_counts"][s] == np.bincount(y[id_sets[s]], minlength=3).tolist()
    assert prepared.n_classes == 3 and prepared.n_features == 4
    assert all(getattr(prepared, s).x.dtype == np.float32 for s in SPLITS)
    assert all(getattr(prepared, s).y.dtype == np.int64 for s in SPLITS)
    # normalize none: the features are untouched
    assert np.array_equal(prepared.train.x, x[id_sets["train"]])
    norm = prepared.normalization
    assert float(norm.mean) == 0.0 and float(norm.std) == 1.0


def test_prepare_without_noise_changes_no_label(tmp_path: Path) -> None:
    path, _, y = write_npz(tmp_path)
    prepared = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    assert np.array_equal(prepared.train.y, y[ids(prepared.train)])
    assert prepared.meta["noisy_labels"] == 0


def test_prepare_is_reproducible_and_seeded(tmp_path: Path) -> None:
    path, _, _ = write_npz(tmp_path)
    cfg = DataConfig(dataset="npz", path=str(path), label_noise=0.2, normalize="none")
    a = prepare(cfg)
    b = prepare(cfg)
    c = prepare(cfg.model_copy(update={"split_seed": 1}))
    for s in SPLITS:
        assert np.array_equal(getattr(a, s).x, getattr(b, s).x)
        assert np.array_equal(getattr(a, s).y, getattr(b, s).y)
    assert not np.array_equal(np.sort(ids(a.val)), np.sort(ids(c.val)))


def test_prepare_global_normalisation_uses_train_statistics_only(tmp_path: Path) -> None:
    path, x, _ = write_npz(tmp_path)
    raw = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    normed = prepare(DataConfig(dataset="npz", path=str(path), normalize="global"))
    norm = normed.normalization
    # the split does not depend on the normalisation: recover the rows from the raw run
    train_rows = x[ids(raw.train)].astype(np.float64)
    mean, std = train_rows.mean(), train_rows.std()
    assert float(norm.mean) == pytest.approx(mean, rel=1e-6)
    assert float(norm.std) == pytest.approx(std, rel=1e-6)
    assert normed.train.x.mean() == pytest.approx(0.0, abs=1e-5)
    assert normed.train.x.std(dtype=np.float64) == pytest.approx(1.0, rel=1e-5)
    for s in ("val", "test"):
        rows = x[ids(getattr(raw, s))].astype(np.float64)
        np.testing.assert_allclose(getattr(normed, s).x, (rows - mean) / std, rtol=0, atol=1e-5)
        # statistics of the whole pool would give measurably different values (leakage check)
        leaked = (rows - x.mean(dtype=np.float64)) / x.std(dtype=np.float64)
        assert np.abs(getattr(normed, s).x - leaked).max() > 1e-3


def test_prepare_per_feature_normalisation(tmp_path: Path) -> None:
    path, x, _ = write_npz(tmp_path)
    raw = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    normed = prepare(DataConfig(dataset="npz", path=str(path), normalize="per_feature"))
    norm = normed.normalization
    train_rows = x[ids(raw.train)].astype(np.float64)
    mean, std = train_rows.mean(axis=0), train_rows.std(axis=0)
    assert norm.mean.shape == norm.std.shape == (4,)
    np.testing.assert_allclose(normed.train.x[:, :3].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normed.train.x[:, :3].std(axis=0, dtype=np.float64), 1.0, rtol=1e-5)
    # the constant feature is not divided by zero: it becomes 0, not NaN
    assert float(norm.std[3]) == 1.0
    assert np.all(normed.train.x[:, 3] == 0.0) and np.all(normed.test.x[:, 3] == 0.0)
    rows = x[ids(raw.test)].astype(np.float64)
    np.testing.assert_allclose(
        normed.test.x[:, :3], (rows[:, :3] - mean[:3]) / std[:3], rtol=0, atol=1e-5
    )


def test_prepare_train_size_subsamples_the_training_split(tmp_path: Path) -> None:
    path, x, y = write_npz(tmp_path)
    full = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    small = prepare(DataConfig(dataset="npz", path=str(path), normalize="none", train_size=30))
    assert small.meta["sizes"] == {"train": 30, "val": 30, "test": 30}
    assert set(ids(small.train)) <= set(ids(full.train))  # drawn from the same training split
    assert np.array_equal(ids(small.val), ids(full.val))
    exact = np.bincount(y[ids(full.train)]) * 30 / len(full.train.y)
    assert np.all(np.abs(np.bincount(small.train.y, minlength=3) - exact) < 1)
    with pytest.raises(DataError, match="train_size=91 exceeds the 90"):
        prepare(DataConfig(dataset="npz", path=str(path), train_size=91))


def test_prepare_refuses_features_whose_normalisation_overflows(tmp_path: Path) -> None:
    # Every value fits float32, but one lies 6e38 from the mean of the rest: subtracting the
    # mean in float32 gives infinity, which must fail at prepare, not as "diverged" later.
    path = tmp_path / "wide.npz"
    x = np.full((60, 2), -3e38)
    x[:, 0] = np.arange(60) % 2
    x[::5, 1] = 3e38  # one row in five: the mean stays near -3e38
    np.savez(path, x=x, y=np.arange(60) % 2)
    with pytest.raises(DataError, match=r"wide\.npz: the \w+ split is not finite after normalize"):
        prepare(DataConfig(dataset="npz", path=str(path), normalize="per_feature"))
