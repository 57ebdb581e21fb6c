"""One epoch of a stack: its seeds' training steps, each in its own shuffled order, the
evaluation passes, and whether a seed's numbers show it diverged. No files, no MLflow.

Speed: the splits live on the training device for the whole run; a mini-batch is an index
slice of each seed's shuffled permutation (no DataLoader, no per-sample Python), and metrics
are summed on the device, so the caller reads them once an epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import TrainingDiverged
from ..core.variant import Variant
from . import optimizer_calls
from .device import DeviceSplit
from .regularization import apply_max_norm, penalised_parameters, training_objective
from .schedules import Schedule
from .stacks import Stack

EVAL_CHUNK = 8192  # rows per forward pass when evaluating a whole split

# A run has diverged once its train data loss (whole split, eval mode) is over this many times
# the chance level ln C, the loss of a uniform guess: the optimizer descends on that very loss,
# so a working run stays near or below ln C from its first epoch on (the highest seen is in
# docs/performance.md); a mean of 100 ln C means logits wrong by hundreds on average, which
# descent does not reach. A loss that blows up while staying finite ends the run like a NaN
# (tests/unit/training/test_trainer.py trains at a learning rate of 1e6).
DIVERGED_OVER_CHANCE = 100


def never() -> bool:
    return False


@dataclass(frozen=True)
class Compute:
    """How the forward pass runs: the stack itself or its compiled form, in float32 or under
    bfloat16 autocast. `model` is always the plain stack (weights, train/eval mode)."""

    model: Stack
    forward: Callable[..., torch.Tensor]
    bf16: bool = False

    @classmethod
    def of(cls, model: Stack, precision: str = "float32", compile: bool = False) -> Compute:
        return cls(model, torch.compile(model) if compile else model, precision == "bfloat16")

    def __call__(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.forward(x, *args)


@torch.no_grad()
def evaluate(net: Compute, split: DeviceSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """Each seed's (mean cross-entropy, accuracy) over a whole split, in eval mode, no penalty,
    float32: two (K,) tensors on the device, so callers can batch their reads."""
    # Always float32: the logged losses, the choice of the best epoch and the test score are
    # the data loss as defined, whatever precision the training steps use.
    net = Compute(net.model, net.forward)
    stack = net.model
    was_training = stack.training
    stack.eval()
    loss_sum = split.x.new_zeros(len(stack))
    correct = split.x.new_zeros(len(stack))
    for start in range(0, len(split), EVAL_CHUNK):
        chunk = slice(start, start + EVAL_CHUNK)
        logits = net(split.x[..., chunk, :]).float()  # (K, B, C)
        target = split.y[..., chunk].expand(len(stack), -1)  # (K, B): shared or each seed's
        for k in range(len(stack)):
            loss_sum[k] += F.cross_entropy(logits[k], target[k], reduction="sum")
        correct += (logits.argmax(dim=2) == target).sum(dim=1)
    stack.train(was_training)
    return loss_sum / len(split), correct / len(split)


def train_one_epoch(
    net: Compute,
    optimizer: torch.optim.Optimizer,
    split: DeviceSplit,
    batch: int,
    shuffles: list[torch.Generator],
    variant: Variant,
    dropout: list[torch.Generator] | None,
    should_stop: Callable[[], bool] = never,
    augment: list[Callable[[torch.Tensor], torch.Tensor]] | None = None,
    schedule: Schedule | None = None,
) -> torch.Tensor:
    """One pass over `split` (shared, or each seed's own) for each seed of the stack, each in
    its own shuffled order (and, with `augment`, each seed's mini-batch augmented by its own
    function; with `schedule`, told of each step); returns each seed's summed data loss, (K,)
    on the device, so the caller reads it once.
    Stops with KeyboardInterrupt before a mini-batch once `should_stop()` says so (a held
    Ctrl-C or SIGTERM: training ends as Ctrl-C does)."""
    stack = net.model
    stack.train()
    penalised = [penalised_parameters(seed, variant.penalize_bias) for seed in stack.nets]
    running = split.x.new_zeros(len(stack))
    device = split.x.device
    orders = torch.stack([torch.randperm(len(split), generator=g, device=device) for g in shuffles])
    seeds = torch.arange(len(shuffles), device=device).unsqueeze(1)  # (K, 1), for own splits
    for start in range(0, len(split), batch):
        if should_stop():
            raise KeyboardInterrupt
        idx = orders[:, start : start + batch]  # (K, B)
        x = split.x[seeds, idx] if split.per_seed else split.x[idx]  # (K, B, D)
        if augment is not None:
            x = torch.stack([f(xk) for f, xk in zip(augment, x.unbind(0), strict=True)])
        logits = net(x, dropout).float()  # (K, B, C)
        target = split.y[seeds, idx] if split.per_seed else split.y[idx]
        objective, data_losses = 0.0, []
        # Each seed's objective as it would be alone (unbind, not indexing: its backward
        # stacks the K gradients at once).
        for k, seed_logits in enumerate(logits.unbind(0)):
            loss, data_loss = training_objective(seed_logits, target[k], variant, penalised[k])
            objective = objective + loss
            data_losses.append(data_loss.detach())
        optimizer_calls.zero_grad(optimizer)
        objective.backward()
        optimizer_calls.step(optimizer)
        if schedule is not None:
            schedule.after_step()
        if variant.max_norm is not None:
            apply_max_norm(stack, variant.max_norm)
        running += torch.stack(data_losses) * idx.shape[1]
    return running


def divergence(
    row: dict[str, float], epoch: int, seed: int, n_classes: int
) -> TrainingDiverged | None:
    """Why a seed's epoch `row` shows it diverged (`TrainingDiverged`, not raised), or None: a
    value that is not finite, or a train loss far above chance (`DIVERGED_OVER_CHANCE`)."""
    bad = [k for k, x in row.items() if not math.isfinite(x)]
    if bad:
        return TrainingDiverged(epoch, f"{', '.join(bad)} not finite", seed)
    chance = math.log(n_classes)  # the cross-entropy of a uniform guess
    if row["train_loss"] > DIVERGED_OVER_CHANCE * chance:
        return TrainingDiverged(
            epoch,
            f"train loss {row['train_loss']:.3g} is over {DIVERGED_OVER_CHANCE} × the "
            f"chance level ln {n_classes} = {chance:.3g}",
            seed,
        )
    return None
