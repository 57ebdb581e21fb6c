"""The training of a variant's seeds: `train_stack(specs, data) -> [TrainResult]`. No files, no
MLflow.

The seeds of a stack train together in lanes (`lanes`): on a CPU each seed is a lane of its
own, and as many lanes as the cores hold run side by side in threads, each lane's next epoch
taken up by the first thread free; on a GPU a lane holds several seeds as one batched network.
A seed's numbers do not depend on the stack it trains in: its initialisation, batch order and
dropout masks come from its own seed and generators (`seed_state`); its objective, optimizer
step, weight decay and max-norm are its own; and it has its own best epoch and early stopping
(a seed that stops leaves its lane, so it stops changing). On a CPU, alone or in a stack of any
size, its history and weights are bit-identical (tests/unit/training/test_stacks.py).
"""

from __future__ import annotations

import time
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
from .augment import augment
from .device import TrainingData
from .epoch import Compute, divergence, evaluate, never, train_one_epoch
from .lanes import Lane, lanes_at_once, lanes_for, run_lanes
from .regularization import make_optimizer, penalised_parameters, penalty, weight_statistics
from .stacks import stack_of


@dataclass
class TrainResult:
    """What one seed's training produced: its history, its best weights and their test score."""

    architecture: Architecture
    model: nn.Module  # holds the best epoch's weights
    history: list[dict[str, float]]  # one row per epoch, keys as in EPOCH_METRICS
    summary: dict[str, float]
    stopped_early: bool
    device: str


EPOCH_METRICS = (
    "train_loss",  # data loss over the whole training split, eval mode
    "train_accuracy",
    "train_loss_running",  # mean data loss of the epoch's mini-batches, train mode (dropout on)
    "penalty",  # λ1·Σ|w| + λ2·Σw² at the end of the epoch
    "val_loss",
    "val_accuracy",
    "loss_gap",  # val_loss - train_loss
    "accuracy_gap",  # train_accuracy - val_accuracy
    "epoch_seconds",  # the seed's share of its lane's epoch: wall time / seeds in the lane
)

# (index of the seed in the specs, epoch, its row) and (index, its training state)
OnEpoch = Callable[[int, int, dict[str, float]], None]
OnCheckpoint = Callable[[int, dict[str, Any]], None]


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
    """`train_stack` for seeds that start from the same epoch."""
    device = data.device
    spec = specs[0]
    v, settings = spec.variant, spec.train
    arch = spec.architecture(data.input_shape or (data.n_features,), data.n_classes)
    seeds = [seed_state.start(s, arch, device) for s in specs]
    for seed, saved in zip(seeds, resume, strict=True):
        if saved is not None:
            seed_state.resumed(seed, saved, device)
    has_dropout = v.input_dropout > 0 or any(r > 0 for r in spec.dropout_rates)
    augmenting = v.crop > 0 or v.flip
    optimizer_states = [s["optimizer"] if s is not None else {} for s in resume]

    def augmenter(i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        raw_zero = data.for_seed(seeds[i].spec.seed).raw_zero
        fill = raw_zero if raw_zero is not None else 0.0
        return lambda x: augment(x, arch.shape, v.crop, v.flip, seeds[i].augment, fill)

    def lane(members: list[int], epoch: int) -> Lane:
        stack = stack_of(arch, [seeds[i].state for i in members])
        optimizer = make_optimizer(
            stack, spec.optimizer, settings.lr, v.weight_decay, v.penalize_bias, settings.momentum
        )
        for net, i in zip(stack.nets, members, strict=True):
            seed_state.set_optimizer_state(optimizer, net, optimizer_states[i])
        net = Compute.of(stack, settings.precision, settings.compile)
        return Lane(
            members, stack, optimizer, net, epoch, data.for_lane([specs[i].seed for i in members])
        )

    def epoch_of(lane: Lane) -> tuple[list[list[float]], float]:
        """One epoch of a lane's seeds, their numbers (one read from the device) and its wall
        time."""
        started = time.perf_counter()
        running = train_one_epoch(
            lane.net,
            lane.optimizer,
            lane.data.train,
            settings.batch_size,
            [seeds[i].shuffle for i in lane.members],
            v,
            [seeds[i].dropout for i in lane.members] if has_dropout else None,
            should_stop,
            [augmenter(i) for i in lane.members] if augmenting else None,
        )
        train_loss, train_acc = evaluate(lane.net, lane.data.train)
        val_loss, val_acc = evaluate(lane.net, lane.data.val)
        with torch.no_grad():
            pen = torch.stack(
                [
                    penalty(penalised_parameters(n, v.penalize_bias), v.l1, v.l2)
                    for n in lane.stack.nets
                ]
            )
        values = [train_loss, train_acc, running / len(lane.data.train), pen, val_loss, val_acc]
        rows = torch.stack([t.to(running.dtype) for t in values], dim=1).tolist()
        return rows, time.perf_counter() - started

    def leaving(old: Lane, stopping: set[int]) -> Lane | None:
        """`old` without the seeds in `stopping`: a lane of the others, as they are now; None
        if none stays."""
        stay = [i for i in old.members if i not in stopping]
        for pos, i in enumerate(old.members):
            if i not in stopping:
                seeds[i].state = old.stack.seed_state(pos)
                optimizer_states[i] = seed_state.optimizer_state_of(
                    old.optimizer, old.stack.nets[pos]
                )
        return lane(stay, old.epoch) if stay else None

    def after_epoch(lane: Lane, result: tuple[list[list[float]], float]) -> Lane | None:
        """A lane's epoch recorded, seed by seed; the lane for its next epoch, or None."""
        values, seconds = result
        epoch = lane.epoch
        rows = [dict(zip(EPOCH_METRICS[:6], vals, strict=False)) for vals in values]
        stopping = set()
        for i, row in zip(lane.members, rows, strict=True):
            # A seed that diverges leaves the lane, its epoch unrecorded; the others go on.
            seeds[i].diverged = divergence(row, epoch, seeds[i].spec.seed, data.n_classes)
            if seeds[i].diverged is not None:
                stopping.add(i)
        for pos, (i, row) in enumerate(zip(lane.members, rows, strict=True)):
            if i in stopping:
                continue
            if seeds[i].record(epoch, row, lane.stack, pos):
                stopping.add(i)
            row["epoch_seconds"] = seconds / len(lane.members)
            on_epoch(i, epoch, row)
        if on_checkpoint is not None and checkpoint_every and epoch % checkpoint_every == 0:
            for pos, i in enumerate(lane.members):
                if i not in stopping:
                    on_checkpoint(i, seeds[i].training_state(lane.stack, pos, lane.optimizer))
        lane.epoch += 1
        following = leaving(lane, stopping) if stopping else lane  # they stop changing
        return following if following is not None and following.epoch <= settings.epochs else None

    if device.type == "cpu":
        torch.set_num_threads(settings.threads)
    first = len(seeds[0].history) + 1
    members = lanes_for(device, settings, list(range(len(seeds))))
    lanes = [lane(m, first) for m in members] if first <= settings.epochs else []
    run_lanes(lanes, lanes_at_once(device, settings, len(members)), epoch_of, after_epoch)
    return _finish(seeds, arch, data)


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
