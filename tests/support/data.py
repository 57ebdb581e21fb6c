"""A small synthetic pool whose rows can be traced through prepare (column 0 is the row's index),
as arrays and as an .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.prepared import Split

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
