"""The prepare stage's work: the dataset as one pool (`pool_of`), with how each seed draws its
splits from it (`splits.draw`), checked before anything trains."""

from __future__ import annotations

import numpy as np

from ..core.config import AT_PATH, DataConfig
from ..core.errors import DataError
from .prepared import SPLITS, Pool, Prepared
from .sources import load_source
from .splits import draw, split_indices, stratified_subsample


def pool_of(cfg: DataConfig) -> Pool:
    """Load the dataset as one pool of flattened float32 examples, with how its splits are
    drawn; a split that would be empty or a `train_size` too large is refused here, before
    anything trains."""
    source = load_source(cfg)
    x, y = source.x, source.y
    input_shape = list(x.shape[1:])
    x = x.reshape(len(x), -1).astype(np.float32)
    n_classes = int(y.max()) + 1
    official = source.official_test if cfg.test_split == "official" else None
    # Every draw has these sizes and clean class counts: the quotas depend on the counts only.
    test_fraction = None if official is not None else cfg.test_fraction
    idx = split_indices(y, cfg.val_fraction, test_fraction, official, np.random.default_rng(0))
    if cfg.train_size is not None:
        available = len(idx["train"])
        if cfg.train_size > available:
            raise DataError(
                f"data.train_size={cfg.train_size} exceeds the {available} training examples"
            )
        train_y = y[idx["train"]]
        idx["train"] = idx["train"][
            stratified_subsample(train_y, cfg.train_size, np.random.default_rng(0))
        ]
    meta = {
        "dataset": cfg.dataset,
        "source": cfg.path if cfg.dataset in AT_PATH else cfg.dataset,
        "input_shape": input_shape,
        "n_features": int(x.shape[1]),
        "n_classes": n_classes,
        "pool_size": len(y),
        "sizes": {s: len(idx[s]) for s in SPLITS},
        "class_counts": {s: np.bincount(y[idx[s]], minlength=n_classes).tolist() for s in SPLITS},
        "splits": cfg.splits,
        "split_seed": cfg.split_seed,
        "val_fraction": cfg.val_fraction,
        "test_fraction": test_fraction,
        "train_size": cfg.train_size,
        "label_noise": cfg.label_noise,
        "noisy_labels": round(cfg.label_noise * len(idx["train"])),
        "normalize": cfg.normalize,
    }
    # Keys only some pools have, so that the others' meta.json (and digest) stay as they were.
    if official is not None:  # the pool's last `official_test` rows are the official test set
        meta |= {"test_split": "official", "official_test": official}
    if source.class_names is not None:
        meta["class_names"] = source.class_names
    pool = Pool(x, y.astype(np.int64), meta)
    draw(pool, 0)  # data that cannot be normalised is refused now, not when a seed trains
    return pool


def prepare(cfg: DataConfig, seed: int = 0) -> Prepared:
    """Seed `seed`'s splits of the dataset `cfg` names: `draw(pool_of(cfg), seed)`."""
    return draw(pool_of(cfg), seed)
