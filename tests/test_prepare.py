"""Splitting, subsampling, label noise, normalisation, the prepared-data files and the sources,
all on synthetic data made here."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.config import DataConfig
from pipeline.data.pool import pool_of, prepare
from pipeline.data.prepared import SPLITS, Pool, Split, load_pool, write_pool
from pipeline.data.sources import DataError, load_npz, load_source
from pipeline.data.splits import (
    add_label_noise,
    draw,
    quotas,
    stratified_split,
    stratified_subsample,
)
from pipeline.training.device import SeedSplits

# --- quotas --------------------------------------------------------------------------------------


def test_quotas_largest_remainder_by_hand() -> None:
    # 7 over [5, 3, 2]: exact 3.5, 2.1, 1.4 -> floors 3, 2, 1 (sum 6); the one left goes to the
    # largest remainder (0.5, class 0)
    assert quotas(np.array([5, 3, 2]), 7).tolist() == [4, 2, 1]
    assert quotas(np.array([10, 10]), 0).tolist() == [0, 0]
    assert quotas(np.array([4, 6]), 10).tolist() == [4, 6]


@pytest.mark.parametrize("seed", range(20))
def test_quotas_sum_exactly_and_are_proportional_within_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 100, size=rng.integers(2, 11))
    total = int(rng.integers(0, counts.sum() + 1))
    q = quotas(counts, total)
    assert q.sum() == total
    assert (q >= 0).all()
    exact = counts * total / counts.sum()
    assert np.all(np.abs(q - exact) < 1)


# --- stratified split ----------------------------------------------------------------------------


def labels(counts: list[int], seed: int = 0) -> np.ndarray:
    """Labels with the given class counts, in shuffled order."""
    y = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(y)


@pytest.mark.parametrize(
    ("counts", "val_fraction", "test_fraction"),
    [
        ([50, 30, 20], 0.2, 0.1),
        ([47, 31, 22, 9], 0.25, 0.15),
        ([27, 19, 15, 7], 0.25, 0.25),
        ([100, 3, 61], 0.3, 0.2),
    ],
)
def test_stratified_split_partitions_and_keeps_proportions(
    counts: list[int], val_fraction: float, test_fraction: float
) -> None:
    y = labels(counts)
    n = len(y)
    train, val, test = stratified_split(y, val_fraction, test_fraction, np.random.default_rng(3))
    # disjoint, and together everything
    assert not set(train) & set(val)
    assert not set(train) & set(test)
    assert not set(val) & set(test)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(n))
    assert len(val) == round(n * val_fraction)
    assert len(test) == round(n * test_fraction)
    pool = np.array(counts) / n
    for idx in (val, test):
        got = np.bincount(y[idx], minlength=len(counts))
        assert np.all(np.abs(got - pool * len(idx)) < 1)
    # The training split is what is left of each class after val and test took their quotas, so
    # the two rounding errors can add up: it is within 2 (not 1) of the pool's proportions.
    got = np.bincount(y[train], minlength=len(counts))
    assert np.all(np.abs(got - pool * len(train)) < 2)


def test_stratified_split_same_seed_same_split_other_seed_other_split() -> None:
    y = labels([40, 35, 25])
    a = stratified_split(y, 0.2, 0.2, np.random.default_rng(7))
    b = stratified_split(y, 0.2, 0.2, np.random.default_rng(7))
    c = stratified_split(y, 0.2, 0.2, np.random.default_rng(8))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(np.sort(p), np.sort(q)) for p, q in zip(a, c, strict=True))


def test_stratified_split_refuses_an_empty_split() -> None:
    y = labels([2, 2])  # round(4 · 0.1) = 0 validation examples
    with pytest.raises(DataError, match="val split is empty"):
        stratified_split(y, 0.1, 0.5, np.random.default_rng(0))


def test_stratified_subsample_keeps_size_and_proportions() -> None:
    y = labels([60, 30, 10])
    idx = stratified_subsample(y, 50, np.random.default_rng(0))
    assert len(idx) == 50
    assert len(set(idx.tolist())) == 50
    assert idx.min() >= 0 and idx.max() < len(y)
    assert np.bincount(y[idx], minlength=3).tolist() == [30, 15, 5]


# --- label noise ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fraction", "n_classes"), [(203, 0.3, 5), (100, 0.5, 2), (50, 0.0, 3), (40, 0.99, 4)]
)
def test_add_label_noise_changes_exactly_round_f_n_labels(
    n: int, fraction: float, n_classes: int
) -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, n_classes, size=n)
    y_before = y.copy()
    noisy_y, mask = add_label_noise(y, fraction, n_classes, np.random.default_rng(5))
    assert np.array_equal(y, y_before)  # the input is not modified in place
    assert mask.dtype == bool and mask.sum() == round(fraction * n)
    assert np.array_equal(noisy_y != y, mask)  # every chosen label differs, no other changes
    assert noisy_y.min() >= 0 and noisy_y.max() < n_classes


def test_add_label_noise_reaches_every_other_class() -> None:
    y = np.zeros(3000, dtype=np.int64)
    noisy_y, mask = add_label_noise(y, 1.0, 4, np.random.default_rng(0))
    assert mask.all()
    counts = np.bincount(noisy_y, minlength=4)
    assert counts[0] == 0
    assert np.all(np.abs(counts[1:] - 1000) < 100)  # uniform over the three other classes


# --- prepare() on an .npz ------------------------------------------------------------------------


N_POOL = 150


def pool(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x column 0 is the example's index (to trace rows through prepare); 3 classes."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(3), [60, 50, 40]))
    x = rng.normal(5.0, 3.0, size=(N_POOL, 4))
    x[:, 0] = np.arange(N_POOL)
    x[:, 3] = 7.0  # a constant feature
    return x.astype(np.float32), y


def write_npz(tmp_path: Path, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    x, y = pool(seed)
    path = tmp_path / "pool.npz"
    np.savez(path, x=x, y=y)
    return path, x, y


def ids(split: Split) -> np.ndarray:
    return np.rint(split.x[:, 0]).astype(np.int64)


def test_prepare_label_noise_only_in_train(tmp_path: Path) -> None:
    path, x, y = write_npz(tmp_path)
    prepared, norm = prepare(
        DataConfig(dataset="npz", path=str(path), label_noise=0.3, normalize="none")
    )
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
    assert float(norm["mean"]) == 0.0 and float(norm["std"]) == 1.0


def test_prepare_without_noise_changes_no_label(tmp_path: Path) -> None:
    path, _, y = write_npz(tmp_path)
    prepared, _ = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    assert np.array_equal(prepared.train.y, y[ids(prepared.train)])
    assert prepared.meta["noisy_labels"] == 0


def test_prepare_is_reproducible_and_seeded(tmp_path: Path) -> None:
    path, _, _ = write_npz(tmp_path)
    cfg = DataConfig(dataset="npz", path=str(path), label_noise=0.2, normalize="none")
    a, _ = prepare(cfg)
    b, _ = prepare(cfg)
    c, _ = prepare(cfg.model_copy(update={"split_seed": 1}))
    for s in SPLITS:
        assert np.array_equal(getattr(a, s).x, getattr(b, s).x)
        assert np.array_equal(getattr(a, s).y, getattr(b, s).y)
    assert not np.array_equal(np.sort(ids(a.val)), np.sort(ids(c.val)))


def test_prepare_global_normalisation_uses_train_statistics_only(tmp_path: Path) -> None:
    path, x, _ = write_npz(tmp_path)
    raw, _ = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    normed, norm = prepare(DataConfig(dataset="npz", path=str(path), normalize="global"))
    # the split does not depend on the normalisation: recover the rows from the raw run
    train_rows = x[ids(raw.train)].astype(np.float64)
    mean, std = train_rows.mean(), train_rows.std()
    assert float(norm["mean"]) == pytest.approx(mean, rel=1e-6)
    assert float(norm["std"]) == pytest.approx(std, rel=1e-6)
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
    raw, _ = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    normed, norm = prepare(DataConfig(dataset="npz", path=str(path), normalize="per_feature"))
    train_rows = x[ids(raw.train)].astype(np.float64)
    mean, std = train_rows.mean(axis=0), train_rows.std(axis=0)
    assert norm["mean"].shape == norm["std"].shape == (4,)
    np.testing.assert_allclose(normed.train.x[:, :3].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normed.train.x[:, :3].std(axis=0, dtype=np.float64), 1.0, rtol=1e-5)
    # the constant feature is not divided by zero: it becomes 0, not NaN
    assert float(norm["std"][3]) == 1.0
    assert np.all(normed.train.x[:, 3] == 0.0) and np.all(normed.test.x[:, 3] == 0.0)
    rows = x[ids(raw.test)].astype(np.float64)
    np.testing.assert_allclose(
        normed.test.x[:, :3], (rows[:, :3] - mean[:3]) / std[:3], rtol=0, atol=1e-5
    )


def test_prepare_train_size_subsamples_the_training_split(tmp_path: Path) -> None:
    path, x, y = write_npz(tmp_path)
    full, _ = prepare(DataConfig(dataset="npz", path=str(path), normalize="none"))
    small, _ = prepare(DataConfig(dataset="npz", path=str(path), normalize="none", train_size=30))
    assert small.meta["sizes"] == {"train": 30, "val": 30, "test": 30}
    assert set(ids(small.train)) <= set(ids(full.train))  # drawn from the same training split
    assert np.array_equal(ids(small.val), ids(full.val))
    exact = np.bincount(y[ids(full.train)]) * 30 / len(full.train.y)
    assert np.all(np.abs(np.bincount(small.train.y, minlength=3) - exact) < 1)
    with pytest.raises(DataError, match="train_size=91 exceeds the 90"):
        prepare(DataConfig(dataset="npz", path=str(path), train_size=91))


# --- splits drawn per seed -----------------------------------------------------------------------


def test_each_seed_draws_its_own_split_and_every_variant_the_same(tmp_path: Path) -> None:
    path, _, y = write_npz(tmp_path)
    cfg = DataConfig(
        dataset="npz", path=str(path), label_noise=0.2, train_size=60, normalize="none"
    )
    pool = pool_of(cfg)
    first, again, other = draw(pool, 3)[0], draw(pool, 3)[0], draw(pool_of(cfg), 4)[0]
    for s in SPLITS:  # the same seed: the same split, bit for bit, from any load of the pool
        assert np.array_equal(getattr(first, s).x, getattr(again, s).x)
        assert np.array_equal(getattr(first, s).y, getattr(again, s).y)
    assert not np.array_equal(np.sort(ids(first.test)), np.sort(ids(other.test)))
    for drawn in (first, other):  # every draw: a partition, sized and stratified as meta says
        every = np.concatenate([ids(drawn.val), ids(drawn.test)])
        assert len(np.unique(np.concatenate([every, ids(drawn.train)]))) == len(every) + 60
        for s in SPLITS:
            assert len(getattr(drawn, s).y) == pool.meta["sizes"][s]
        for s in ("val", "test"):
            counts = np.bincount(y[ids(getattr(drawn, s))], minlength=3).tolist()
            assert counts == pool.meta["class_counts"][s]
        assert (drawn.train.y != y[ids(drawn.train)]).sum() == pool.meta["noisy_labels"] == 12


def test_a_fixed_split_is_the_same_for_every_seed(tmp_path: Path) -> None:
    path, _, _ = write_npz(tmp_path)
    pool = pool_of(DataConfig(dataset="npz", path=str(path), splits="fixed", label_noise=0.2))
    a, b = draw(pool, 0)[0], draw(pool, 9)[0]
    assert a.digest() == b.digest() and a.meta["seed"] is None


def test_a_drawn_split_is_normalised_by_its_own_training_part(tmp_path: Path) -> None:
    path, x, _ = write_npz(tmp_path)
    pool = pool_of(DataConfig(dataset="npz", path=str(path), normalize="global"))
    for seed in (0, 1):
        drawn, norm = draw(pool, seed)
        train_raw = x[ids_raw(drawn.train, norm)]
        assert np.isclose(norm["mean"], train_raw.mean(dtype=np.float64), rtol=1e-6)
        assert abs(float(drawn.train.x.mean())) < 1e-5  # its own training part: mean 0


def ids_raw(split: Split, norm: dict[str, np.ndarray]) -> np.ndarray:
    """The pool rows of a normalised split (column 0 held each row's index before)."""
    return np.rint(split.x[:, 0] * norm["std"] + norm["mean"]).astype(np.int64)


# --- the prepared files --------------------------------------------------------------------------


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


# --- sources: npz --------------------------------------------------------------------------------


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
    x, y = load_source(npz_cfg(path))
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


# --- sources: torchvision, read offline from the IDX files ---------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x00000800 | array.ndim  # 0x08: unsigned byte data
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_read_from_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train_x = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    train_y = (np.arange(30) % 3).astype(np.uint8)
    test_y = ((np.arange(20) + 1) % 3).astype(np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train_x)
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    assert (raw / "train-images-idx3-ubyte").read_bytes()[:4] == b"\x00\x00\x08\x03"
    assert (raw / "train-labels-idx1-ubyte").read_bytes()[:4] == b"\x00\x00\x08\x01"

    x, y = load_source(DataConfig(dataset="mnist", root=str(tmp_path), download=False))
    assert x.shape == (50, 1, 28, 28)  # official train/test halves pooled, train first
    assert np.array_equal(x[:, 0], np.concatenate([train_x, test_x]))
    assert y.dtype == np.int64
    assert np.array_equal(y, np.concatenate([train_y, test_y]).astype(np.int64))

    # and the whole prepare stage runs on it: 784 flattened features
    prepared, _ = prepare(
        DataConfig(
            dataset="mnist", root=str(tmp_path), download=False, val_fraction=0.2, test_fraction=0.2
        )
    )
    assert prepared.meta["n_features"] == 784 and prepared.meta["n_classes"] == 3
    assert prepared.meta["sizes"] == {"train": 30, "val": 10, "test": 10}


def test_torchvision_missing_files_without_download(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_source(DataConfig(dataset="kmnist", root=str(empty), download=False))
    message = str(info.value)
    assert "kmnist" in message and "data.download" in message and str(empty) in message


def test_the_device_draws_each_seed_once_and_stacks_a_lane(tmp_path: Path) -> None:
    path, _, _ = write_npz(tmp_path)
    own = SeedSplits(pool_of(DataConfig(dataset="npz", path=str(path))), torch.device("cpu"))
    first = own.for_seed(1)
    assert own.for_seed(1) is first  # drawn once, however many stacks ask
    assert torch.equal(first.test.x, torch.from_numpy(draw(own.pool, 1)[0].test.x))
    assert not torch.equal(first.test.x, own.for_seed(2).test.x)
    lane = own.for_lane([1, 2])  # a GPU lane: each seed's split, stacked
    assert lane.train.per_seed and lane.train.x.shape[0] == 2
    assert torch.equal(lane.val.y[1], own.for_seed(2).val.y)
    shared = SeedSplits(
        pool_of(DataConfig(dataset="npz", path=str(path), splits="fixed")), torch.device("cpu")
    )
    assert shared.for_seed(1) is shared.for_seed(2) is shared.for_lane([1, 2])


def test_the_device_holds_one_stack_of_seeds_at_a_time(tmp_path: Path) -> None:
    path, _, _ = write_npz(tmp_path)
    own = SeedSplits(pool_of(DataConfig(dataset="npz", path=str(path))), torch.device("cpu"))
    kept = own.for_stack([1, 2]).for_seed(1)
    own.for_seed(2)
    assert own.for_stack([1, 3]).for_seed(1) is kept  # still held: the next stack has it
    assert set(own._drawn) == {1}  # seed 2's splits let go
