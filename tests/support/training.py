"""A tiny synthetic training problem, a run spec on it, one seed trained alone (`train`), and the
comparison of two runs' numbers bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pipeline.core.config import ModelConfig, TrainConfig
from pipeline.core.errors import TrainingDiverged
from pipeline.core.spec import RunSpec
from pipeline.core.variant import Variant
from pipeline.data.prepared import Prepared, Split
from pipeline.training.device import TrainingData
from pipeline.training.epoch import never
from pipeline.training.trainer import TrainResult, train_stack

TIMINGS = ("epoch_seconds", "train_seconds")  # seconds differ from run to run
CPU = torch.device("cpu")


def problem(random_labels: bool = False, seed: int = 0) -> Prepared:
    """200 examples, 10 features, 3 Gaussian clusters; 120 train / 40 val / 40 test."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 2.0, size=(3, 10))
    y = rng.integers(0, 3, size=200)
    x = (centers[y] + rng.normal(size=(200, 10))).astype(np.float32)
    if random_labels:  # nothing to learn: fitting train makes val loss rise at once
        y = rng.integers(0, 3, size=200)
    y = y.astype(np.int64)

    def split(a: int, b: int) -> Split:
        return Split(x[a:b], y[a:b])

    return Prepared(
        split(0, 120), split(120, 160), split(160, 200), {"n_features": 10, "n_classes": 3}
    )


# Everything a stack could get wrong at once: dropout masks from each seed's generator, an L1
# and an L2 penalty, max-norm, decoupled weight decay, and early stopping (patience 2 on
# random labels), so that seeds leave the stack at different epochs.
EVERYTHING = Variant(
    dropout=0.3,
    input_dropout=0.1,
    l1=1e-4,
    l2=1e-3,
    max_norm=2.0,
    optimizer="adamw",
    weight_decay=0.1,
    patience=2,
)


def spec(variant: Variant | None = None, seed: int = 0, **train_kw: object) -> RunSpec:
    settings = {"epochs": 3, "batch_size": 32, "lr": 0.01, "seeds": [0], "device": "cpu"}
    settings.update(train_kw)
    return RunSpec(
        "v", variant or Variant(), ModelConfig(hidden_sizes=[16]), TrainConfig(**settings), seed
    )


def numbers(result: TrainResult) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Every logged number of a run but its timings."""
    history = [{k: v for k, v in row.items() if k not in TIMINGS} for row in result.history]
    summary = {k: v for k, v in result.summary.items() if k not in TIMINGS}
    return history, summary


def assert_same_run(a: TrainResult, b: TrainResult) -> None:
    assert numbers(a) == numbers(b)
    assert a.stopped_early == b.stopped_early
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def train(
    spec: RunSpec,
    data: TrainingData,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    resume: dict[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] = never,
) -> TrainResult:
    """One seed alone: `train_stack` with a stack of one; raises `TrainingDiverged` if its loss
    diverges."""
    [result] = train_stack(
        [spec],
        data,
        on_epoch=(lambda _, epoch, row: on_epoch(epoch, row)) if on_epoch else None,
        resume=[resume],
        on_checkpoint=(lambda _, state: on_checkpoint(state)) if on_checkpoint else None,
        checkpoint_every=checkpoint_every,
        should_stop=should_stop,
    )
    if isinstance(result, TrainingDiverged):
        raise result
    return result
