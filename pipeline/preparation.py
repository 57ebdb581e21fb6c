"""How the prepared splits are made: the same way for every variant and seed.

Steps, each with its own random stream derived from `data.split_seed`:
1. stratified train / val / test split of the pooled dataset;
2. optional stratified subsample of the training split (`data.train_size`);
3. optional label noise in the training split only (`data.label_noise`): that fraction of
   training labels is replaced by a different class drawn uniformly; val and test stay clean;
4. normalisation with statistics of the (final) training split only.
"""

from __future__ import annotations

import numpy as np

from .config import DataConfig
from .data import SPLITS, Prepared, Split
from .errors import DataError
from .sources import load_source


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
        if len(idx) == 0:
            raise DataError(
                f"the {name} split is empty ({n} examples with val_fraction={val_fraction}, "
                f"test_fraction={test_fraction})"
            )
    return out  # type: ignore[return-value]


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


def normalization(x_train: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) from the training split only, so nothing of val/test leaks into training."""
    if how == "none":
        return np.zeros((), np.float32), np.ones((), np.float32)
    if how == "global":
        mean, std = x_train.mean(dtype=np.float64), x_train.std(dtype=np.float64)
    else:  # per_feature
        mean, std = x_train.mean(axis=0, dtype=np.float64), x_train.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)  # constant features stay constant instead of dividing by 0
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def prepare(cfg: DataConfig) -> tuple[Prepared, dict[str, np.ndarray]]:
    """Load, split, subsample, add noise and normalise; return splits and the normalisation."""
    x, y = load_source(cfg)
    input_shape = list(x.shape[1:])
    x = x.reshape(len(x), -1).astype(np.float32)
    n_classes = int(y.max()) + 1
    split_rng, subsample_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.split_seed).spawn(3)
    )
    idx = dict(
        zip(
            SPLITS, stratified_split(y, cfg.val_fraction, cfg.test_fraction, split_rng), strict=True
        )
    )
    if cfg.train_size is not None:
        available = len(idx["train"])
        if cfg.train_size > available:
            raise DataError(
                f"data.train_size={cfg.train_size} exceeds the {available} training examples"
            )
        idx["train"] = idx["train"][
            stratified_subsample(y[idx["train"]], cfg.train_size, subsample_rng)
        ]
    y_train, noisy = add_label_noise(y[idx["train"]], cfg.label_noise, n_classes, noise_rng)
    mean, std = normalization(x[idx["train"]], cfg.normalize)
    labels = {"train": y_train, "val": y[idx["val"]], "test": y[idx["test"]]}
    splits = {s: Split(((x[idx[s]] - mean) / std).astype(np.float32), labels[s]) for s in SPLITS}
    for name, split in splits.items():
        if not np.isfinite(split.x).all():  # float32 arithmetic overflowed in normalising
            raise DataError(
                f"{cfg.path or cfg.dataset}: the {name} split is not finite after "
                f"normalize: {cfg.normalize} in float32; rescale x"
            )
    meta = {
        "dataset": cfg.dataset,
        "input_shape": input_shape,
        "n_features": int(x.shape[1]),
        "n_classes": n_classes,
        "sizes": {s: len(splits[s].y) for s in SPLITS},
        "class_counts": {s: np.bincount(splits[s].y, minlength=n_classes).tolist() for s in SPLITS},
        "split_seed": cfg.split_seed,
        "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction,
        "train_size": cfg.train_size,
        "label_noise": cfg.label_noise,
        "noisy_labels": int(noisy.sum()),
        "normalize": cfg.normalize,
        # what a raw 0 (a black pixel) is after normalising: augmentation pads crops with it;
        # None when each feature is normalised apart
        "raw_zero": None if mean.ndim else float(-mean / std),
    }
    prepared = Prepared(splits["train"], splits["val"], splits["test"], meta)
    return prepared, {"mean": mean, "std": std}
