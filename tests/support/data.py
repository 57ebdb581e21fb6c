"""A small synthetic pool whose rows can be traced through prepare (column 0 is the row's index),
as arrays and as an .npz."""

from __future__ import annotations

import struct
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


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "eel"),
    per_class: int = 12,
    size: tuple[int, int] = (8, 6),
    mode: str = "L",
) -> Path:
    """A folder in torchvision's ImageFolder layout, `root/<class>/<i>.png`: `per_class` tiny
    images of `size` (width, height) per class, each class's pixels around its own level (so
    a network can learn them); returns `root`."""
    from PIL import Image

    rng = np.random.default_rng(0)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            level = 40 + 80 * c
            pixels = rng.integers(level - 30, level + 30, (size[1], size[0], channels))
            pixels = pixels.astype(np.uint8)
            Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(
                root / name / f"{i}.png"
            )
    return root


def table(n: int = 60, labels: tuple = ("high", "low", "mid")) -> dict[str, list]:
    """A small table's columns: three numeric features (one of them integer) and a `kind`
    label column that cycles through `labels`, each class's features around its own level."""
    rng = np.random.default_rng(0)
    kind = [labels[i % len(labels)] for i in range(n)]
    level = np.array([i % len(labels) for i in range(n)], dtype=np.float64)
    return {
        "width": (level + rng.normal(0, 0.3, n)).tolist(),
        "kind": kind,
        "height": (2 * level + rng.normal(0, 0.3, n)).tolist(),
        "count": [int(v) for v in rng.integers(0, 5, n)],
    }


def write_idx(path: Path, array: np.ndarray) -> None:
    """`array` in the IDX format of MNIST's files (unsigned bytes)."""
    magic = 0x00000800 | array.ndim  # 0x08: unsigned byte data
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(
    root: Path, n_train: int, n_test: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST's four files as torchvision reads them from `root/MNIST/raw/` (no download):
    random 28×28 images in 3 classes, the train set's labels cycling 0, 1, 2 and the test
    set's 1, 2, 0; returns (train_x, train_y, test_x, test_y)."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train_x = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    train_y = (np.arange(n_train) % 3).astype(np.uint8)
    test_y = ((np.arange(n_test) + 1) % 3).astype(np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train_x)
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    return train_x, train_y, test_x, test_y
