"""How a stack's seeds share the device: which seeds train as one lane, how many lanes train at
once, and the threads that run the lanes' epochs. No files, no MLflow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from .device import DeviceData
from .epoch import Compute
from .schedules import Schedule
from .stacks import Stack

Result = TypeVar("Result")


@dataclass
class Lane:
    """Seeds whose steps run together: a stack, its optimizer and learning-rate schedule, and
    which seeds it holds."""

    members: list[int]  # positions in the stack's specs
    stack: Stack
    optimizer: torch.optim.Optimizer
    net: Compute
    epoch: int  # the epoch it trains next
    data: DeviceData  # its seeds' splits: shared, or each seed's own
    schedule: Schedule | None = None  # None: train.lr throughout (lr_schedule none)


def lanes_for(device: torch.device, settings: Any, members: list[int]) -> list[list[int]]:
    """How a stack's seeds share the device. On a CPU each seed is a lane of its own, each
    product on `train.threads` cores; a seed's numbers are then those of its training alone,
    on any machine with the same CPU, whatever its core count. On a GPU, lanes of
    `train.parallel` seeds (0: all), each one batched network, since a small network there is
    bound by kernel launches, not by arithmetic."""
    if device.type == "cpu":
        return [[i] for i in members]
    size = settings.parallel or len(members)
    return [members[i : i + size] for i in range(0, len(members), size)]


def lanes_at_once(device: torch.device, settings: Any, lanes: int) -> int:
    """How many lanes train at the same moment: `train.parallel` if set; else on a CPU as many
    as the cores hold at `train.threads` each (more would only take turns on the cores:
    docs/performance.md), on a GPU every lane."""
    if settings.parallel:
        at_once = settings.parallel
    elif device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        at_once = max(1, (cores or 1) // settings.threads)
    else:
        at_once = lanes
    return max(1, min(at_once, lanes))


def run_lanes(
    lanes: list[Lane],
    at_once: int,
    epoch_of: Callable[[Lane], Result],
    after_epoch: Callable[[Lane, Result], Lane | None],
) -> None:
    """Train `lanes` epoch by epoch on `at_once` threads: each lane's next epoch goes to the
    first thread free, so that lanes need not wait for each other (3 seeds on 2 cores keep both
    busy). `after_epoch(lane, result)` runs in this thread, so every callback does, and gives
    the lane for its next epoch, or None once the lane is done. An error ends the lanes still
    waiting and goes on to the caller."""
    with ThreadPoolExecutor(max_workers=max(1, at_once)) as pool:
        running: dict[Future, Lane] = {pool.submit(epoch_of, lane): lane for lane in lanes}
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f].members):
                    following = after_epoch(running.pop(future), future.result())
                    if following is not None:
                        running[pool.submit(epoch_of, following)] = following
        finally:
            for future in running:
                future.cancel()
