"""The training of a variant's seeds: `train_stack(specs, data) -> [TrainResult]`. No files, no
MLflow.

The seeds of a stack train together in lanes (`lanes`): on a CPU each seed is a lane of its
own, and as many lanes as the cores hold run side by side in threads, each lane's next epoch
taken up by the first thread free; on a GPU a lane holds several seeds as one batched network.
A seed's numbers do not depend on the stack it trains in: its initialisation, batch order and
dropout masks come from its own seed and generators (`seed_state`); its objective, optimizer
step, weight decay and max-norm are its own; its learning rate is its epoch's in the schedule,
the same for every seed of a lane (`schedules`); and it has its own best epoch and early
stopping (a seed that stops leaves its lane, so it stops changing). On a CPU, alone or in a
stack of any size, its history and weights are bit-identical
(tests/unit/training/test_stacks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.architecture import Architecture
from ..core.errors import TrainingDiverged
from ..core.spec import RunSpec
from . import seed_state
from .device import TrainingData
from .epoch import Compute, evaluate, never
from .lanes import Lane, lanes_at_once, lanes_for, run_lanes
from .regularization import weight_statistics
from .stack_training import EpochNumbers, OnCheckpoint, OnEpoch, StackTraining
from .stacks import stack_of


@dataclass
class TrainResult:
    """What one seed's training produced: its history, its best weights and their test score."""

    architecture: Architecture
    model: nn.Module  # holds the best epoch's weights
    # one row per epoch, keys as in stack_training.EPOCH_METRICS (and LR with a schedule)
    history: list[dict[str, float]]
    summary: dict[str, float]
    stopped_early: bool
    device: str


def train_stack(
    specs: list[RunSpec],
    data: TrainingData,
    on_epoch: OnEpoch | None = None,
    resume: list[dict[str, Any] | None] | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] = never,
) -> list[TrainResult | TrainingDiverged]:
    """Train the seeds `specs` of one variant together, and evaluate each seed's best epoch
    once on the test split; the results in the order of `specs`. A seed whose loss diverges
    (`epoch.divergence`) stops there and its result is the `TrainingDiverged` that says why;
    the other seeds train on to their own end: each seed is an experiment of its own.

    Each seed's "best epoch" is its epoch of lowest val data loss; its weights are restored at
    the end whether or not early stopping is on, and only they see the test split.

    Every `checkpoint_every` epochs, `on_checkpoint(i, state)` receives seed i's full training
    state (weights, optimizer, generators, history, best so far): plain tensors and numbers,
    loadable with `torch.load(weights_only=True)`. Passing it back in `resume[i]` continues
    bit for bit, in a stack of any make-up. `should_stop` is asked before every mini-batch;
    once it says so, training ends with KeyboardInterrupt.
    """
    same = {repr({k: v for k, v in s.hyperparameters().items() if k != "seed"}) for s in specs}
    if len(same) != 1:
        raise ValueError("a stack trains the seeds of one variant only")
    resume = resume or [None] * len(specs)
    data = data.for_stack([s.seed for s in specs])
    # Seeds that continue from different epochs train as groups, one after another: the loop
    # counts one epoch for all the seeds it holds.
    groups: dict[int, list[int]] = {}
    for i, saved in enumerate(resume):
        groups.setdefault(len(saved["history"]) if saved else 0, []).append(i)
    results: list[TrainResult | TrainingDiverged | None] = [None] * len(specs)
    for members in groups.values():

        def epoch_of(pos: int, epoch: int, row: dict[str, float], m: list[int] = members) -> None:
            if on_epoch is not None:
                on_epoch(m[pos], epoch, row)

        def checkpoint_of(pos: int, state: dict[str, Any], m: list[int] = members) -> None:
            if on_checkpoint is not None:
                on_checkpoint(m[pos], state)

        trained = _train(
            [specs[i] for i in members],
            data,
            [resume[i] for i in members],
            epoch_of,
            checkpoint_of if on_checkpoint is not None else None,
            checkpoint_every,
            should_stop,
        )
        for i, result in zip(members, trained, strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


def _train(
    specs: list[RunSpec],
    data: TrainingData,
    resume: list[dict[str, Any] | None],
    on_epoch: OnEpoch,
    on_checkpoint: OnCheckpoint | None,
    checkpoint_every: int,
    should_stop: Callable[[], bool],
) -> list[TrainResult | TrainingDiverged]:
    """`train_stack` for seeds that start from the same epoch: their lanes, each trained epoch
    by epoch until its seeds stop or the last epoch is done; then each seed's result."""
    training = StackTraining(specs, data, resume, should_stop)
    settings = specs[0].train
    if data.device.type == "cpu":
        torch.set_num_threads(settings.threads)
    first = len(training.seeds[0].history) + 1
    members = lanes_for(data.device, settings, list(range(len(specs))))
    lanes = [training.lane(m, first) for m in members] if first <= settings.epochs else []

    def after_epoch(lane: Lane, result: EpochNumbers) -> Lane | None:
        return training.after_epoch(lane, result, on_epoch, on_checkpoint, checkpoint_every)

    at_once = lanes_at_once(data.device, settings, len(members))
    run_lanes(lanes, at_once, training.run_epoch, after_epoch)
    return _finish(training.seeds, training.arch, data)


def _finish(
    seeds: list[seed_state.Seed], arch: Architecture, data: TrainingData
) -> list[TrainResult | TrainingDiverged]:
    """Each seed's best weights, scored once on the test split; for a seed that diverged, why."""
    done = [s for s in seeds if s.diverged is None]
    if not done:
        return [s.diverged for s in seeds]  # type: ignore[misc]
    assert all(s.best_state is not None for s in done)  # an epoch ran, its val loss finite
    best = stack_of(arch, [s.best_state for s in done]).to(data.device)
    test = data.for_lane([s.spec.seed for s in done]).test
    test_loss, test_acc = (t.tolist() for t in evaluate(Compute.of(best), test))
    finished = []
    for k, (seed, net) in enumerate(zip(done, best.seed_networks(), strict=True)):
        best_row, last = seed.history[seed.best_epoch - 1], seed.history[-1]
        summary = {
            "best_epoch": float(seed.best_epoch),
            "epochs_run": float(len(seed.history)),
            "best_val_loss": best_row["val_loss"],
            "best_val_accuracy": best_row["val_accuracy"],
            "train_loss_best": best_row["train_loss"],
            "train_accuracy_best": best_row["train_accuracy"],
            "loss_gap_best": best_row["loss_gap"],
            "accuracy_gap_best": best_row["accuracy_gap"],
            "train_loss_last": last["train_loss"],
            "val_loss_last": last["val_loss"],
            "loss_gap_last": last["loss_gap"],
            "accuracy_gap_last": last["accuracy_gap"],
            "test_loss": test_loss[k],
            "test_accuracy": test_acc[k],
            **weight_statistics(net),
            "train_seconds": float(np.sum([r["epoch_seconds"] for r in seed.history])),
        }
        finished.append(
            TrainResult(arch, net, seed.history, summary, seed.stopped_early, str(data.device))
        )
    in_order = iter(finished)  # `done` keeps the order of `seeds`
    return [s.diverged if s.diverged is not None else next(in_order) for s in seeds]
