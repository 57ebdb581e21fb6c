"""The learning-rate schedule of a lane (`train.lr_schedule`): torch's own scheduler over the
lane's optimizer, stepped after each epoch (step, cosine) or after each mini-batch's step
(one_cycle), and its state, which a seed carries from lane to lane and into its checkpoint. No
files, no MLflow.

The seeds of a lane are all at the same epoch, and one optimizer holds them all: one scheduler
over it gives each seed the learning rates it has when it trains alone. `none` makes no
scheduler at all: the optimizer keeps `train.lr` throughout, as before schedules existed.

The schedules are torch's, with these settings:
- step: `StepLR(step_size=lr_step_size, gamma=lr_gamma)`, stepped per epoch: epoch e trains at
  lr·γ^⌊(e−1)/step_size⌋;
- cosine: `CosineAnnealingLR(T_max=epochs)`, stepped per epoch: epoch e trains at
  lr·(1 + cos(π·(e−1)/epochs))/2;
- one_cycle: `OneCycleLR(max_lr=lr, total_steps=epochs × steps per epoch,
  pct_start=lr_pct_start, cycle_momentum=False)`, stepped per mini-batch: from lr/25 up to lr,
  then down to lr/25e4, cosine both ways. Momentum (`train.momentum`, Adam's β1) stays as set.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch.optim import lr_scheduler

from ..core.config import TrainConfig


class Schedule:
    """A lane's scheduler, and when it steps."""

    def __init__(self, scheduler: lr_scheduler.LRScheduler, per_batch: bool) -> None:
        self.scheduler, self.per_batch = scheduler, per_batch

    @property
    def lr(self) -> float:
        """The learning rate of the next optimizer step (every parameter group has it)."""
        return float(self.scheduler.optimizer.param_groups[0]["lr"])

    def after_step(self) -> None:
        if self.per_batch:
            self.scheduler.step()

    def after_epoch(self) -> None:
        if not self.per_batch:
            self.scheduler.step()

    def state(self) -> dict[str, Any]:
        """The scheduler's state (a copy: plain numbers, strings, lists and dicts, loadable
        with `torch.load(weights_only=True)`)."""
        return copy.deepcopy(self.scheduler.state_dict())


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Mini-batches (optimizer steps) per epoch over a training split of `n_train`."""
    return math.ceil(n_train / batch_size)


def make_schedule(
    optimizer: torch.optim.Optimizer,
    settings: TrainConfig,
    n_train: int,
    state: dict[str, Any] | None = None,
) -> Schedule | None:
    """The schedule `settings.lr_schedule` over `optimizer` (None for `none`), at its start, or
    where `state` (a `Schedule.state()`) left it: the optimizer then takes the learning rate it
    had there, as a scheduler's state does not hold it in the optimizer."""
    name = settings.lr_schedule
    if name == "none":
        return None
    if name == "step":
        scheduler: lr_scheduler.LRScheduler = lr_scheduler.StepLR(
            optimizer, step_size=settings.lr_step_size, gamma=settings.lr_gamma
        )
    elif name == "cosine":
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    elif name == "one_cycle":
        scheduler = lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=settings.lr,
            total_steps=settings.epochs * steps_per_epoch(n_train, settings.batch_size),
            pct_start=settings.lr_pct_start,
            cycle_momentum=False,
        )
    else:
        raise ValueError(f"unknown learning-rate schedule {name!r}")
    if state is not None:
        scheduler.load_state_dict(copy.deepcopy(state))
        for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True):
            group["lr"] = lr
    return Schedule(scheduler, per_batch=name == "one_cycle")


def one_cycle_rise(settings: TrainConfig, n_train: int) -> str | None:
    """Why one_cycle cannot train on a training split of `n_train`: its rise to `lr` would
    hold one step or none (torch's OneCycleLR divides by zero where it holds exactly one);
    else None."""
    if settings.lr_schedule != "one_cycle":
        return None
    per_epoch = steps_per_epoch(n_train, settings.batch_size)
    total = settings.epochs * per_epoch
    if settings.lr_pct_start * total > 1:
        return None
    return (
        f"train.lr_pct_start: {settings.lr_pct_start:g} of one_cycle's {total} steps "
        f"({settings.epochs} epochs × {per_epoch} mini-batches) leaves its rise to train.lr "
        "one step or none; raise it"
    )
