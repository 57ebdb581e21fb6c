"""The prepared pool and the splits drawn from it: their types, and the files of
`data/prepared/`.

Format, readable with numpy alone (`np.load(..., allow_pickle=False)`):
- `pool.npz`: `x` float32 (N, D) flattened raw features, `y` int64 (N,): every example;
- `meta.json`: dataset, input shape, the split sizes and class counts, and how each split is
  drawn (`splits.draw`): `splits` (`per_seed` or `fixed`), `split_seed`, the fractions,
  `train_size`, `label_noise`, `normalize`.
The splits themselves are drawn where a seed trains, so that a seed the rounds add draws its
own as the first seeds did.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError
from ..core.files import folder_into

SPLITS = ("train", "val", "test")
HINT = "run `python -m pipeline prepare` (or `dvc repro prepare`) first"


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (N, D) float32
    y: np.ndarray  # (N,) int64


@dataclass(frozen=True)
class Normalization:
    """x ↦ (x − mean) / std, with statistics of a training split only: one value each
    (`normalize: global`, or 0 and 1 for `none`) or one per feature (`per_feature`)."""

    mean: np.ndarray  # float32, () or (D,)
    std: np.ndarray

    @classmethod
    def identity(cls) -> Normalization:
        return cls(np.zeros((), np.float32), np.ones((), np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


class _Described:
    """What the pool and a split drawn from it both tell: the data's shape, and the data
    settings as MLflow records them."""

    meta: dict[str, Any]

    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    @property
    def n_classes(self) -> int:
        return int(self.meta["n_classes"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape before flattening: (C, H, W) for images."""
        return tuple(self.meta.get("input_shape") or (self.n_features,))

    def digest(self) -> str:
        raise NotImplementedError

    def described(self) -> dict[str, str]:
        """The prepared splits as an MLflow dataset: name, digest (of the arrays), source
        (`data/prepared`), schema and profile."""
        return {
            "name": self.meta["dataset"],
            "digest": self.digest()[:12],
            "source_type": "local",
            "source": json.dumps({"uri": "data/prepared"}),
            "schema": json.dumps({"x": ["float32", list(self.input_shape)], "y": ["int64", []]}),
            "profile": json.dumps({**self.meta["sizes"], "label_noise": self.meta["label_noise"]}),
        }

    def logged(self) -> dict[str, Any]:
        """The data settings every run records next to its own hyperparameters."""
        return {
            "dataset": self.meta["dataset"],
            "n_train": self.meta["sizes"]["train"],
            "n_val": self.meta["sizes"]["val"],
            "label_noise": self.meta["label_noise"],
            "split_seed": self.meta["split_seed"],
            "splits": self.meta["splits"],
        }


@dataclass(frozen=True)
class Prepared(_Described):
    """One seed's splits, drawn from the pool and normalised (`splits.draw`): with the
    normalisation, which a model served on raw inputs applies first, and each split's rows
    of the pool (`pool.x[indices["test"]]` are the test split's raw inputs)."""

    train: Split
    val: Split
    test: Split
    meta: dict[str, Any]
    normalization: Normalization = field(default_factory=Normalization.identity)
    indices: dict[str, np.ndarray] | None = None  # None: not drawn from a pool

    def digest(self) -> str:
        """SHA-256 of every split's arrays: the data's content, normalization included."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        h = hashlib.sha256()
        for name in SPLITS:
            for array in (getattr(self, name).x, getattr(self, name).y):
                h.update(f"{name}{array.dtype}{array.shape}".encode())
                h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class Pool(_Described):
    """Every example of the dataset, raw, and how the splits are drawn from it (`meta`)."""

    x: np.ndarray  # (N, D) float32, flattened, not normalised
    y: np.ndarray  # (N,) int64
    meta: dict[str, Any]

    def digest(self) -> str:
        """SHA-256 of the pool's arrays and of how splits are drawn: what every split drawn
        from it depends on, whatever the seed."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        # once per load: the checkpoint's fingerprint, the rounds' keys and every run's
        # dataset input all ask for it
        h = hashlib.sha256(json.dumps(self.meta, sort_keys=True).encode())
        for array in (self.x, self.y):
            h.update(f"{array.dtype}{array.shape}".encode())
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()


def write_pool(pool: Pool, out_dir: Path) -> None:
    """Write into a temporary folder beside `out_dir`, then swap it in whole."""
    with folder_into(out_dir) as tmp:
        np.savez(tmp / "pool.npz", x=pool.x, y=pool.y)
        (tmp / "meta.json").write_text(json.dumps(pool.meta, indent=2) + "\n")


def load_meta(in_dir: Path) -> dict[str, Any]:
    """`meta.json` of the prepared data, or a DataError that says to prepare first."""
    if not (in_dir / "meta.json").is_file():
        raise DataError(f"{in_dir}: no prepared data (meta.json missing); {HINT}")
    try:
        return json.loads((in_dir / "meta.json").read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{in_dir / 'meta.json'}: corrupted ({e.msg}); {HINT}") from None


def load_pool(in_dir: Path) -> Pool:
    """Read what `prepare` wrote, refusing anything that is missing, pickled or inconsistent."""
    meta = load_meta(in_dir)
    path = in_dir / "pool.npz"
    if not path.is_file() or "splits" not in meta:
        raise DataError(f"{path}: missing; {HINT}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x, y = arrays["x"], arrays["y"]
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: corrupted ({type(e).__name__}: {e}); {HINT}") from None
    if (
        x.ndim != 2
        or x.shape != (len(y), meta.get("n_features"))
        or x.dtype != np.float32
        or y.dtype != np.int64
    ):
        raise DataError(f"{path}: arrays do not match meta.json; {HINT}")
    return Pool(x, y, meta)
