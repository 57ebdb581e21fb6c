"""One seed's own part of a stack's training: its initial weights and generators, its history,
best epoch and early stopping, and the optimizer state and training state (with the
learning-rate schedule's state) a checkpoint keeps of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.architecture import Architecture
from ..core.errors import TrainingDiverged
from ..core.spec import RunSpec
from .model import build
from .schedules import Schedule
from .stacks import Stack

AUGMENT_STREAM = 2**40  # the augmentation generator of seed s starts from this + s


@dataclass
class Seed:
    """One seed's own part of a stack's training."""

    spec: RunSpec
    shuffle: torch.Generator  # batch order
    dropout: torch.Generator  # dropout masks
    augment: torch.Generator  # crops and flips
    state: dict[str, torch.Tensor]  # its network's state dict at the start
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early: bool = False
    diverged: TrainingDiverged | None = None  # why it stopped, if its loss blew up

    def record(self, epoch: int, row: dict[str, float], stack: Stack, pos: int) -> bool:
        """Epoch `epoch`'s numbers into the history, its gaps added; the weights of the stack's
        seed `pos` kept if its val loss is the lowest so far. True when early stopping ends the
        seed here (no lower val loss for `patience` epochs)."""
        row["loss_gap"] = row["val_loss"] - row["train_loss"]
        row["accuracy_gap"] = row["train_accuracy"] - row["val_accuracy"]
        self.history.append(row)
        if row["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch = row["val_loss"], epoch
            self.best_state = stack.seed_state(pos)
            return False
        patience = self.spec.variant.patience
        self.stopped_early = patience is not None and epoch - self.best_epoch >= patience
        return self.stopped_early

    def training_state(
        self,
        stack: Stack,
        pos: int,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule | None = None,
    ) -> dict[str, Any]:
        """What a checkpoint keeps of this seed, the stack's seed `pos`: plain tensors and
        numbers, for `torch.load(weights_only=True)`; a snapshot, which later epochs (of this
        seed or, in another lane, of the others) leave as it is. With a learning-rate
        schedule, its state too (`schedule`); without, none."""
        state = {
            "model": stack.seed_state(pos),
            "optimizer": optimizer_state_of(optimizer, stack.nets[pos]),
            "rng": {
                "shuffle": self.shuffle.get_state(),
                "dropout": self.dropout.get_state(),
                "augment": self.augment.get_state(),
            },
            "history": [dict(row) for row in self.history],
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
        }
        if schedule is not None:
            state["schedule"] = schedule.state()
        return state


def start(spec: RunSpec, arch: Architecture, device: torch.device) -> Seed:
    """A seed's initial weights and generators: those it has trained alone since the first
    version (`torch.manual_seed(seed)`, then the network's initialisation, then dropout)."""
    torch.manual_seed(spec.seed)
    net = build(arch).to(device)
    dropout = torch.Generator(device=device)
    if device.type == "cpu":  # the global stream after the initialisation, as nn.Dropout drew
        dropout.set_state(torch.get_rng_state())
    else:  # the device's own stream, untouched by the initialisation on the CPU
        dropout.manual_seed(spec.seed)
    shuffle = torch.Generator(device=device).manual_seed(spec.seed)
    # a stream of its own, apart from the shuffle's (which is seeded with the seed itself)
    augment = torch.Generator(device=device).manual_seed(AUGMENT_STREAM + spec.seed)
    return Seed(spec, shuffle, dropout, augment, net.state_dict())


def resumed(seed: Seed, saved: dict[str, Any], device: torch.device) -> Seed:
    seed.state = {k: t.to(device) for k, t in saved["model"].items()}
    seed.shuffle.set_state(saved["rng"]["shuffle"])
    seed.dropout.set_state(saved["rng"]["dropout"])
    seed.augment.set_state(saved["rng"]["augment"])
    seed.history = [dict(row) for row in saved["history"]]
    seed.best_loss, seed.best_epoch = saved["best_loss"], saved["best_epoch"]
    seed.best_state = {k: t.to(device) for k, t in saved["best_state"].items()}
    return seed


def optimizer_state_of(optimizer: torch.optim.Optimizer, net: nn.Module) -> dict[str, Any]:
    """The optimizer's state of one seed's parameters, by parameter name (copies)."""
    return {
        name: {k: v.clone() for k, v in optimizer.state[p].items()}
        for name, p in net.named_parameters()
        if p in optimizer.state
    }


def set_optimizer_state(
    optimizer: torch.optim.Optimizer, net: nn.Module, state: dict[str, Any]
) -> None:
    for name, p in net.named_parameters():
        if name in state:
            optimizer.state[p] = {k: v.to(p.device) for k, v in state[name].items()}
