"""A seed's splits of the pool (`data/splits.py`): quotas, stratified splits and subsamples,
label noise, and each seed's own draw, on synthetic data made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import DataConfig
from pipeline.data.pool import pool_of
from pipeline.data.prepared import SPLITS, Normalization, Split
from pipeline.data.sources import DataError
from pipeline.data.splits import (
    add_label_noise,
    draw,
    quotas,
    stratified_split,
    stratified_subsample,
)
from tests.support.data import ids, write_npz


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


def test_each_seed_draws_its_own_split_and_every_variant_the_same(tmp_path: Path) -> None:
    path, _, y = write_npz(tmp_path)
    cfg = DataConfig(
        dataset="npz", path=str(path), label_noise=0.2, train_size=60, normalize="none"
    )
    pool = pool_of(cfg)
    first, again, other = draw(pool, 3), draw(pool, 3), draw(pool_of(cfg), 4)
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
    a, b = draw(pool, 0), draw(pool, 9)
    assert a.digest() == b.digest() and a.meta["seed"] is None


def test_a_drawn_split_is_normalised_by_its_own_training_part(tmp_path: Path) -> None:
    path, x, _ = write_npz(tmp_path)
    pool = pool_of(DataConfig(dataset="npz", path=str(path), normalize="global"))
    for seed in (0, 1):
        drawn = draw(pool, seed)
        norm = drawn.normalization
        train_raw = x[ids_raw(drawn.train, norm)]
        assert np.array_equal(ids_raw(drawn.train, norm), drawn.indices["train"])
        assert np.isclose(norm.mean, train_raw.mean(dtype=np.float64), rtol=1e-6)
        assert abs(float(drawn.train.x.mean())) < 1e-5  # its own training part: mean 0


def ids_raw(split: Split, norm: Normalization) -> np.ndarray:
    """The pool rows of a normalised split (column 0 held each row's index before)."""
    return np.rint(split.x[:, 0] * norm.std + norm.mean).astype(np.int64)
