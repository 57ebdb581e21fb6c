"""Each seed's splits on the training device (`training/device.py`): drawn once per seed, one
stack held at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.core.config import DataConfig
from pipeline.core.errors import DataError
from pipeline.data.pool import pool_of
from pipeline.data.splits import (
    draw,
)
from pipeline.training.device import SeedSplits, check_fits, free_memory, split_bytes
from tests.support.data import write_npz


def test_the_device_draws_each_seed_once_and_stacks_a_lane(tmp_path: Path) -> None:
    path, _, _ = write_npz(tmp_path)
    own = SeedSplits(pool_of(DataConfig(dataset="npz", path=str(path))), torch.device("cpu"))
    first = own.for_seed(1)
    assert own.for_seed(1) is first  # drawn once, however many stacks ask
    assert torch.equal(first.test.x, torch.from_numpy(draw(own.pool, 1).test.x))
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


def test_a_pool_too_large_for_the_devices_memory_is_refused_saying_what_fits(
    tmp_path: Path,
) -> None:
    path, _, _ = write_npz(tmp_path)  # 150 examples of 4 features
    pool = pool_of(DataConfig(dataset="npz", path=str(path)))
    assert split_bytes(pool) == 150 * (4 * 4 + 8) == 3600  # x float32, y int64
    check_fits(pool, torch.device("cpu"), available=3600)  # exactly fits
    with pytest.raises(DataError) as info:
        check_fits(pool, torch.device("cpu"), available=1200)
    assert str(info.value) == (
        "the prepared data does not fit on cpu: a seed's splits (150 examples of 4 features) "
        "take 3.5 KiB, and cpu has 1.2 KiB free, room for about 50 such examples; take fewer "
        "(data.train_size, a smaller dataset) or train on a device with more memory"
    )
    fewer = pool_of(DataConfig(dataset="npz", path=str(path), train_size=10))
    assert split_bytes(fewer) == (10 + 30 + 30) * 24  # a subsampled training split takes less
    with pytest.raises(DataError, match=r"take 2\.0 GiB, and cpu has 512\.0 MiB free"):
        check_fits(_pool_of_size(2**26, 6), torch.device("cpu"), available=2**29)


def _pool_of_size(n: int, features: int):
    """A pool's description alone (`check_fits` reads no array): n examples of `features`."""
    from pipeline.data.prepared import Pool

    sizes = {"train": n - 2 * (n // 5), "val": n // 5, "test": n // 5}
    return Pool(None, None, {"sizes": sizes, "n_features": features})  # type: ignore[arg-type]


def test_this_machines_free_memory_is_known_and_a_small_pool_fits(tmp_path: Path) -> None:
    free = free_memory(torch.device("cpu"))
    assert free is not None and free > 2**20
    path, _, _ = write_npz(tmp_path)
    check_fits(pool_of(DataConfig(dataset="npz", path=str(path))), torch.device("cpu"))
