"""Each seed's splits on the training device (`training/device.py`): drawn once per seed, one
stack held at a time."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.core.config import DataConfig
from pipeline.data.pool import pool_of
from pipeline.data.splits import (
    draw,
)
from pipeline.training.device import SeedSplits
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
