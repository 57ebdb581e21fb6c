"""One group of a stack's seeds while they train (`StackTraining`): each seed's own state,
optimizer state and learning-rate schedule state, what its lanes share, and the two steps
`lanes.run_lanes` takes for a lane: its epoch, and what follows the epoch (the rows recorded,
seeds that stop leaving the lane). No files, no MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ..core.spec import RunSpec
from . import seed_state
from .augment import augment
from .device import TrainingData
from .epoch import Compute, divergence, evaluate, train_one_epoch
from .lanes import Lane
from .regularization import make_optimizer, penalised_parameters, penalty
from .schedules import make_schedule
from .stacks import stack_of

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
# With a learning-rate schedule (train.lr_schedule), each row also holds the learning rate of
# the epoch's first step, before `epoch_seconds`; without one, rows are as above.
LR = "lr"

# A lane's epoch: per seed of the lane, its first six EPOCH_METRICS; the epoch's wall time; and
# the learning rate of its first step, with a schedule (else None).
EpochNumbers = tuple[list[list[float]], float, float | None]
# (index of the seed in the specs, epoch, its row) and (index, its training state)
OnEpoch = Callable[[int, int, dict[str, float]], None]
OnCheckpoint = Callable[[int, dict[str, Any]], None]


class StackTraining:
    """Seeds of one variant that start from the same epoch: their own states (`seeds`, and
    `optimizer_states` and `schedule_states` for a seed between lanes), and what their lanes
    share: the network's architecture, the data, the variant and the training settings."""

    def __init__(
        self,
        specs: list[RunSpec],
        data: TrainingData,
        resume: list[dict[str, Any] | None],
        should_stop: Callable[[], bool],
    ) -> None:
        spec = specs[0]
        self.data = data
        self.variant, self.settings, self.optimizer_name = spec.variant, spec.train, spec.optimizer
        self.arch = spec.architecture(data.input_shape or (data.n_features,), data.n_classes)
        self.seeds = [seed_state.start(s, self.arch, data.device) for s in specs]
        for seed, saved in zip(self.seeds, resume, strict=True):
            if saved is not None:
                seed_state.resumed(seed, saved, data.device)
        self.optimizer_states = [s["optimizer"] if s is not None else {} for s in resume]
        # Each seed's schedule state where its last lane left it (None: at its start).
        self.schedule_states = [s.get("schedule") if s is not None else None for s in resume]
        if spec.train.lr_schedule != "none" and any(
            s is not None and "schedule" not in s for s in resume
        ):
            raise ValueError("a checkpoint without the learning-rate schedule's state")
        v = self.variant
        self.has_dropout = v.input_dropout > 0 or any(r > 0 for r in spec.dropout_rates)
        self.augmenting = v.crop > 0 or v.flip
        self.should_stop = should_stop

    def lane(self, members: list[int], epoch: int) -> Lane:
        """The seeds `members` as one lane from `epoch` on: their stack, a fresh optimizer over
        it holding each seed's optimizer state, its learning-rate schedule where the seeds'
        left it (all at `epoch`, so all at the same point), and their splits."""
        v, settings = self.variant, self.settings
        stack = stack_of(self.arch, [self.seeds[i].state for i in members])
        optimizer = make_optimizer(
            stack,
            self.optimizer_name,
            settings.lr,
            v.weight_decay,
            v.penalize_bias,
            settings.momentum,
        )
        for net, i in zip(stack.nets, members, strict=True):
            seed_state.set_optimizer_state(optimizer, net, self.optimizer_states[i])
        net = Compute.of(stack, settings.precision, settings.compile)
        seeds = [self.seeds[i].spec.seed for i in members]
        data = self.data.for_lane(seeds)
        schedule = make_schedule(
            optimizer, settings, len(data.train), self.schedule_states[members[0]]
        )
        return Lane(members, stack, optimizer, net, epoch, data, schedule)

    def run_epoch(self, lane: Lane) -> EpochNumbers:
        """One epoch of a lane's seeds: their numbers (one read from the device) and its wall
        time. Runs in a thread of `run_lanes`; changes nothing but the lane's stack."""
        started = time.perf_counter()
        lr = lane.schedule.lr if lane.schedule is not None else None
        seeds = [self.seeds[i] for i in lane.members]
        running = train_one_epoch(
            lane.net,
            lane.optimizer,
            lane.data.train,
            self.settings.batch_size,
            [s.shuffle for s in seeds],
            self.variant,
            [s.dropout for s in seeds] if self.has_dropout else None,
            self.should_stop,
            [self._augmenter(s) for s in seeds] if self.augmenting else None,
            lane.schedule,
        )
        if lane.schedule is not None:
            lane.schedule.after_epoch()
        train_loss, train_acc = evaluate(lane.net, lane.data.train)
        val_loss, val_acc = evaluate(lane.net, lane.data.val)
        v = self.variant
        with torch.no_grad():
            pen = torch.stack(
                [
                    penalty(penalised_parameters(n, v.penalize_bias), v.l1, v.l2)
                    for n in lane.stack.nets
                ]
            )
        values = [train_loss, train_acc, running / len(lane.data.train), pen, val_loss, val_acc]
        rows = torch.stack([t.to(running.dtype) for t in values], dim=1).tolist()
        return rows, time.perf_counter() - started, lr

    def after_epoch(
        self,
        lane: Lane,
        result: EpochNumbers,
        on_epoch: OnEpoch,
        on_checkpoint: OnCheckpoint | None,
        checkpoint_every: int,
    ) -> Lane | None:
        """A lane's epoch recorded, seed by seed (`on_epoch`, and `on_checkpoint` every
        `checkpoint_every` epochs); the lane for its next epoch, or None once it is done."""
        values, seconds, lr = result
        epoch = lane.epoch
        rows = [dict(zip(EPOCH_METRICS[:6], vals, strict=False)) for vals in values]
        stopping = set()
        for i, row in zip(lane.members, rows, strict=True):
            # A seed that diverges leaves the lane, its epoch unrecorded; the others go on.
            seed = self.seeds[i]
            seed.diverged = divergence(row, epoch, seed.spec.seed, self.data.n_classes)
            if seed.diverged is not None:
                stopping.add(i)
        for pos, (i, row) in enumerate(zip(lane.members, rows, strict=True)):
            if i in stopping:
                continue
            if self.seeds[i].record(epoch, row, lane.stack, pos):
                stopping.add(i)
            if lr is not None:
                row[LR] = lr
            row["epoch_seconds"] = seconds / len(lane.members)
            on_epoch(i, epoch, row)
        if on_checkpoint is not None and checkpoint_every and epoch % checkpoint_every == 0:
            for pos, i in enumerate(lane.members):
                if i not in stopping:
                    state = self.seeds[i].training_state(
                        lane.stack, pos, lane.optimizer, lane.schedule
                    )
                    on_checkpoint(i, state)
        lane.epoch += 1
        following = self._without(lane, stopping) if stopping else lane  # they stop changing
        if following is None or following.epoch > self.settings.epochs:
            return None
        return following

    def _without(self, old: Lane, stopping: set[int]) -> Lane | None:
        """`old` without the seeds in `stopping`: a lane of the others, as they are now; None
        if none stays."""
        stay = [i for i in old.members if i not in stopping]
        for pos, i in enumerate(old.members):
            if i not in stopping:
                self.seeds[i].state = old.stack.seed_state(pos)
                self.optimizer_states[i] = seed_state.optimizer_state_of(
                    old.optimizer, old.stack.nets[pos]
                )
                if old.schedule is not None:
                    self.schedule_states[i] = old.schedule.state()
        return self.lane(stay, old.epoch) if stay else None

    def _augmenter(self, seed: seed_state.Seed) -> Callable[[torch.Tensor], torch.Tensor]:
        """Random crops and flips of a seed's mini-batches, from its own generator."""
        raw_zero = self.data.for_seed(seed.spec.seed).raw_zero
        fill = raw_zero if raw_zero is not None else 0.0
        v = self.variant
        return lambda x: augment(x, self.arch.shape, v.crop, v.flip, seed.augment, fill)
