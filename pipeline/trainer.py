"""The training loop: `train(spec, data) -> TrainResult`. No files, no MLflow.

Speed: the splits live on the training device for the whole run; a mini-batch is an index
slice of a shuffled permutation (no DataLoader, no per-sample Python). Metrics are summed on
the device and read once per epoch, so the loop synchronises with the GPU once an epoch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .device import DeviceData, DeviceSplit
from .errors import Interrupted, TrainingDiverged
from .model import Architecture, build_mlp
from .regularization import (
    apply_max_norm,
    make_optimizer,
    penalised_parameters,
    penalty,
    training_objective,
    weight_statistics,
)
from .spec import RunSpec

EVAL_CHUNK = 8192  # rows per forward pass when evaluating a whole split
# A run has diverged once its train data loss (whole split, eval mode) is over this many times
# the chance level ln C, the loss of a uniform guess: the optimizer descends on that very loss,
# so a working run stays near or below ln C from its first epoch on (over the default study's
# 24 runs the highest is 0.47, against a threshold of 230 for 10 classes); a mean of 100 ln C
# means logits wrong by hundreds on average, which descent does not reach. A loss that blows
# up while staying finite (a learning rate 1e6 gives 5e11 at epoch 1) ends the run like a NaN.
DIVERGED_OVER_CHANCE = 100


def never() -> bool:
    return False


@dataclass
class TrainResult:
    """What one training produced: its history, its best weights and their test score."""

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
    "epoch_seconds",
)


@dataclass(frozen=True)
class Compute:
    """How the forward pass runs: the module itself or its compiled form, in float32 or under
    bfloat16 autocast. `model` is always the plain module (state dicts, weight statistics)."""

    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    bf16: bool = False

    @classmethod
    def of(cls, model: nn.Module, precision: str = "float32", compile: bool = False) -> Compute:
        return cls(model, torch.compile(model) if compile else model, precision == "bfloat16")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.forward(x)


@torch.no_grad()
def evaluate(net: nn.Module | Compute, split: DeviceSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, accuracy) over a whole split, in eval mode, no penalty, float32.

    Returned as 0-d tensors on the device, so callers can batch their reads.
    """
    # Always float32: the logged losses, the choice of the best epoch and the test score are
    # the data loss as defined, whatever precision the training steps use.
    net = Compute(net.model, net.forward) if isinstance(net, Compute) else Compute.of(net)
    model = net.model
    was_training = model.training
    model.eval()
    loss_sum = split.x.new_zeros(())
    correct = split.x.new_zeros(())
    for start in range(0, len(split), EVAL_CHUNK):
        logits = net(split.x[start : start + EVAL_CHUNK]).float()  # (B, C)
        target = split.y[start : start + EVAL_CHUNK]
        loss_sum += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(dim=1) == target).sum()
    model.train(was_training)
    return loss_sum / len(split), correct / len(split)


def train_one_epoch(
    net: nn.Module | Compute,
    optimizer: torch.optim.Optimizer,
    split: DeviceSplit,
    batch: int,
    shuffle: torch.Generator,
    variant: Any,
    penalised: list[torch.Tensor],
    should_stop: Callable[[], bool] = never,
) -> torch.Tensor:
    """One pass over `split` in shuffled mini-batches; returns the summed data loss (0-d, on
    the device), so the caller reads it once. Stops with `Interrupted` before a mini-batch
    once `should_stop()` says so."""
    net = net if isinstance(net, Compute) else Compute.of(net)
    model = net.model
    model.train()
    running = split.x.new_zeros(())
    order = torch.randperm(len(split), generator=shuffle, device=split.x.device)
    for start in range(0, len(split), batch):
        if should_stop():
            raise Interrupted
        idx = order[start : start + batch]
        logits = net(split.x[idx]).float()  # (B, C)
        loss, data_loss = training_objective(logits, split.y[idx], variant, penalised)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if variant.max_norm is not None:
            apply_max_norm(model, variant.max_norm)
        running += data_loss.detach() * len(idx)
    return running


def _rng_states(device: torch.device, shuffle: torch.Generator) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _set_rng_states(
    states: dict[str, torch.Tensor], device: torch.device, shuffle: torch.Generator
) -> None:
    torch.set_rng_state(states["torch"])
    shuffle.set_state(states["shuffle"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


def train(
    spec: RunSpec,
    data: DeviceData,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    resume: dict[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] = never,
) -> TrainResult:
    """Train one (variant, seed) and evaluate its best epoch once on the test split.

    The seed drives initialisation, shuffling and dropout masks; the split is fixed beforehand.
    "Best epoch" is the epoch of lowest val data loss; its weights are restored at the end
    whether or not early stopping is on, and only they see the test split.

    Every `checkpoint_every` epochs, `on_checkpoint` receives the full training state (weights,
    optimizer, RNG states, history, best so far): plain tensors and numbers, loadable with
    `torch.load(weights_only=True)`. Passing it back as `resume` continues bit for bit.
    `should_stop` is asked before every mini-batch; once it says so, training ends with
    `Interrupted`.
    """
    device = data.device
    torch.manual_seed(spec.seed)  # initialisation and dropout masks
    shuffle = torch.Generator(device=device).manual_seed(spec.seed)
    arch = spec.architecture(data.n_features, data.n_classes)
    model = build_mlp(arch).to(device)
    net = Compute.of(model, spec.train.precision, spec.train.compile)
    v = spec.variant
    penalised = penalised_parameters(model, include_bias=v.penalize_bias)
    optimizer = make_optimizer(
        model, spec.optimizer, spec.train.lr, v.weight_decay, v.penalize_bias, spec.train.momentum
    )
    n, batch = len(data.train), spec.train.batch_size
    chance = math.log(data.n_classes)  # the cross-entropy of a uniform guess

    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    stopped_early = False
    first_epoch = 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        _set_rng_states(resume["rng"], device, shuffle)
        history = [dict(row) for row in resume["history"]]
        best_loss, best_epoch = resume["best_loss"], resume["best_epoch"]
        best_state = {k: t.to(device) for k, t in resume["best_state"].items()}
        first_epoch = len(history) + 1
    for epoch in range(first_epoch, spec.train.epochs + 1):
        started = time.perf_counter()
        running = train_one_epoch(
            net, optimizer, data.train, batch, shuffle, v, penalised, should_stop
        )

        train_loss, train_acc = evaluate(net, data.train)
        val_loss, val_acc = evaluate(net, data.val)
        with torch.no_grad():
            pen = penalty(penalised, v.l1, v.l2)
        # One read from the device per epoch.
        values = torch.stack([train_loss, train_acc, running / n, pen, val_loss, val_acc]).tolist()
        row = dict(zip(EPOCH_METRICS[:6], values, strict=False))
        if not all(math.isfinite(x) for x in values):
            bad = [k for k, x in row.items() if not math.isfinite(x)]
            raise TrainingDiverged(epoch, f"{', '.join(bad)} not finite")
        if row["train_loss"] > DIVERGED_OVER_CHANCE * chance:
            raise TrainingDiverged(
                epoch,
                f"train loss {row['train_loss']:.3g} is over {DIVERGED_OVER_CHANCE} × the "
                f"chance level ln {data.n_classes} = {chance:.3g}",
            )
        row["loss_gap"] = row["val_loss"] - row["train_loss"]
        row["accuracy_gap"] = row["train_accuracy"] - row["val_accuracy"]
        row["epoch_seconds"] = time.perf_counter() - started
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)

        if row["val_loss"] < best_loss:
            best_loss, best_epoch = row["val_loss"], epoch
            best_state = copy.deepcopy(model.state_dict())
        elif v.patience is not None and epoch - best_epoch >= v.patience:
            stopped_early = True
            break
        if on_checkpoint is not None and checkpoint_every and epoch % checkpoint_every == 0:
            on_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": _rng_states(device, shuffle),
                    "history": history,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "best_state": best_state,
                }
            )

    assert best_state is not None  # at least one epoch ran and its val loss was finite
    model.load_state_dict(best_state)
    test_loss, test_acc = (float(t) for t in evaluate(net, data.test))
    best, last = history[best_epoch - 1], history[-1]
    summary = {
        "best_epoch": float(best_epoch),
        "epochs_run": float(len(history)),
        "best_val_loss": best["val_loss"],
        "best_val_accuracy": best["val_accuracy"],
        "train_loss_best": best["train_loss"],
        "train_accuracy_best": best["train_accuracy"],
        "loss_gap_best": best["loss_gap"],
        "accuracy_gap_best": best["accuracy_gap"],
        "train_loss_last": last["train_loss"],
        "val_loss_last": last["val_loss"],
        "loss_gap_last": last["loss_gap"],
        "accuracy_gap_last": last["accuracy_gap"],
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        **weight_statistics(model),
        "train_seconds": float(np.sum([r["epoch_seconds"] for r in history])),
    }
    return TrainResult(arch, model, history, summary, stopped_early, str(device))
