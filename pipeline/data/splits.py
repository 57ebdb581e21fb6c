"""How a seed's splits are drawn from the pool (`draw`): the same for every variant under the
same seed. No files, no torch.

With `data.splits: per_seed` (the default) seed s draws its own splits, from the random
streams of (`data.split_seed`, s): the verdicts then speak for splits drawn from this pool,
and pairing by seed removes the split's share of the spread from each difference. With
`fixed`, every seed trains on the one split of `data.split_seed`.

Steps, each with its own random stream:
1. stratified train / val / test split of the pool; under `data.test_split: official` the
   test split is the dataset's own test set (the pool's last rows, `official_test` of them),
   the same for every seed, and train / val are a stratified split of the rest;
2. optional stratified subsample of the training split (`data.train_size`);
3. optional label noise in the training split only (`data.label_noise`): that fraction of
   training labels is replaced by a different class drawn uniformly; val and test stay clean;
4. normalisation with statistics of the (final) training split only.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import DataError
from .prepared import SPLITS, Normalization, Pool, Prepared, Split


def quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes in proportion to `counts` (largest remainder; sums exactly)."""
    exact = counts * (total / counts.sum())
    base = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: total - base.sum()]] += 1
    return base


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train / val / test with the pool's class proportions.

    Val and test get exact largest-remainder quotas (within one example per class); train takes
    the rest, so its per-class counts are within two of proportional.
    """
    classes, counts = np.unique(y, return_counts=True)
    n = len(y)
    n_val = quotas(counts, round(n * val_fraction))
    n_test = quotas(counts, round(n * test_fraction))
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c, nv, nt in zip(classes, n_val, n_test, strict=True):
        idx = rng.permutation(np.flatnonzero(y == c))
        parts["val"].append(idx[:nv])
        parts["test"].append(idx[nv : nv + nt])
        parts["train"].append(idx[nv + nt :])
    out = tuple(rng.permutation(np.concatenate(parts[s])) for s in SPLITS)
    for name, idx in zip(SPLITS, out, strict=True):
        if len(idx) == 0 and (name != "test" or test_fraction > 0):  # 0: no test split asked
            raise DataError(
                f"the {name} split is empty ({n} examples with val_fraction={val_fraction}, "
                f"test_fraction={test_fraction})"
            )
    return out  # type: ignore[return-value]


def split_indices(
    y: np.ndarray,
    val_fraction: float,
    test_fraction: float | None,
    official_test: int | None,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Each split's indices into the pool: a stratified split of it (`stratified_split`); or,
    where the pool's last `official_test` examples are the dataset's own test set, those as
    the test split, and train / val a stratified split of the examples before them."""
    if official_test is None:
        assert test_fraction is not None
        return dict(zip(SPLITS, stratified_split(y, val_fraction, test_fraction, rng), strict=True))
    first = len(y) - official_test
    train, val, _ = stratified_split(y[:first], val_fraction, 0.0, rng)
    return {"train": train, "val": val, "test": np.arange(first, len(y))}


def stratified_subsample(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` examples of `y`, keeping its class proportions."""
    classes, counts = np.unique(y, return_counts=True)
    take = quotas(counts, size)
    picked = [
        rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    return rng.permutation(np.concatenate(picked))


def add_label_noise(
    y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replace `round(fraction·N)` labels by a different class, uniformly; return (y, mask)."""
    noisy = np.zeros(len(y), dtype=bool)
    noisy[rng.choice(len(y), size=round(fraction * len(y)), replace=False)] = True
    shift = rng.integers(1, n_classes, size=len(y))  # never 0: the new label always differs
    return np.where(noisy, (y + shift) % n_classes, y), noisy


def normalization(x_train: np.ndarray, how: str) -> Normalization:
    """From the training split only, so nothing of val/test leaks into training."""
    if how == "none":
        return Normalization.identity()
    if how == "global":
        mean, std = x_train.mean(dtype=np.float64), x_train.std(dtype=np.float64)
    else:  # per_feature
        mean, std = x_train.mean(axis=0, dtype=np.float64), x_train.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)  # constant features stay constant instead of dividing by 0
    return Normalization(np.asarray(mean, np.float32), np.asarray(std, np.float32))


def draw(pool: Pool, seed: int) -> Prepared:
    """Seed `seed`'s splits of `pool` (any seed's under `splits: fixed`): split, subsample,
    add noise and normalise, as the pool's meta says."""
    meta = pool.meta
    x, y = pool.x, pool.y
    entropy = meta["split_seed"] if meta["splits"] == "fixed" else [meta["split_seed"], seed]
    split_rng, subsample_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(3)
    )
    idx = split_indices(
        y, meta["val_fraction"], meta["test_fraction"], meta.get("official_test"), split_rng
    )
    if meta["train_size"] is not None:
        idx["train"] = idx["train"][
            stratified_subsample(y[idx["train"]], meta["train_size"], subsample_rng)
        ]
    y_train, _ = add_label_noise(y[idx["train"]], meta["label_noise"], meta["n_classes"], noise_rng)
    norm = normalization(x[idx["train"]], meta["normalize"])
    labels = {"train": y_train, "val": y[idx["val"]], "test": y[idx["test"]]}
    splits = {s: Split(norm.apply(x[idx[s]]), labels[s]) for s in SPLITS}
    for name, split in splits.items():
        if not np.isfinite(split.x).all():  # float32 arithmetic overflowed in normalising
            raise DataError(
                f"{meta['source']}: the {name} split is not finite after "
                f"normalize: {meta['normalize']} in float32; rescale x"
            )
    drawn = {
        **meta,
        "seed": None if meta["splits"] == "fixed" else seed,
        "class_counts": {
            s: np.bincount(splits[s].y, minlength=meta["n_classes"]).tolist() for s in SPLITS
        },
        # what a raw 0 (a black pixel) is after normalising: augmentation pads crops with it;
        # None when each feature is normalised apart
        "raw_zero": None if norm.mean.ndim else float(-norm.mean / norm.std),
    }
    return Prepared(splits["train"], splits["val"], splits["test"], drawn, norm, idx)
