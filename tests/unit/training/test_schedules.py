"""The learning-rate schedule (`train.lr_schedule`): each epoch's learning rate is torch's
schedule, recomputed here from its formula; `none` makes no scheduler and a schedule changes
no number while it keeps the learning rate; a resumed or re-laned seed continues its schedule
bit for bit."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from pipeline.core.config import TrainConfig
from pipeline.core.errors import ConfigError
from pipeline.core.variant import Variant
from pipeline.training import trainer
from pipeline.training.applicable import check_applicable
from pipeline.training.device import DeviceData
from pipeline.training.regularization import make_optimizer
from pipeline.training.schedules import make_schedule, one_cycle_rise
from pipeline.training.stack_training import LR, StackTraining
from pipeline.training.trainer import train_stack
from tests.support.training import CPU, EVERYTHING, TIMINGS, assert_same_run, problem, spec, train

LR0 = 0.01
EPOCHS = 6
STEPS = 4  # problem(): 120 training examples in mini-batches of 32
SCHEDULES: dict[str, dict[str, Any]] = {
    "step": {"lr_schedule": "step", "lr_step_size": 2, "lr_gamma": 0.5},
    "cosine": {"lr_schedule": "cosine"},
    "one_cycle": {"lr_schedule": "one_cycle", "lr_pct_start": 0.25},
}


@pytest.fixture(scope="module")
def data() -> DeviceData:
    return DeviceData.of(problem(), CPU)


@pytest.fixture(scope="module")
def noisy() -> DeviceData:
    return DeviceData.of(problem(random_labels=True), CPU)


def expected_lr(schedule: dict[str, Any], epoch: int) -> float:
    """The learning rate of epoch `epoch`'s first step, from each schedule's formula (torch's
    documentation), not from torch's code."""
    name = schedule["lr_schedule"]
    if name == "step":
        return LR0 * schedule["lr_gamma"] ** ((epoch - 1) // schedule["lr_step_size"])
    if name == "cosine":  # η_min = 0, T_max = epochs
        return LR0 * (1 + math.cos(math.pi * (epoch - 1) / EPOCHS)) / 2
    # one_cycle: step s of T, from lr/25 up to lr until step pct·T − 1, then down to lr/25e4,
    # each part half a cosine
    step, total = (epoch - 1) * STEPS, EPOCHS * STEPS
    start, low = LR0 / 25, LR0 / 25 / 1e4
    top = schedule["lr_pct_start"] * total - 1

    def cos_anneal(a: float, b: float, fraction: float) -> float:
        return b + (a - b) * (1 + math.cos(math.pi * fraction)) / 2

    if step <= top:
        return cos_anneal(start, LR0, step / top)
    return cos_anneal(LR0, low, (step - top) / (total - 1 - top))


@pytest.mark.parametrize("name", SCHEDULES)
def test_each_epoch_logs_the_learning_rate_of_its_schedule(data: DeviceData, name: str) -> None:
    schedule = SCHEDULES[name]
    result = train(spec(epochs=EPOCHS, lr=LR0, **schedule), data)
    lrs = [row[LR] for row in result.history]
    assert lrs == pytest.approx([expected_lr(schedule, e) for e in range(1, EPOCHS + 1)], rel=1e-9)
    assert len(set(lrs)) > 2  # it moves


def test_one_cycle_steps_per_mini_batch_and_the_others_per_epoch(data: DeviceData) -> None:
    """The scheduler's count in each epoch's checkpoint: one_cycle's total_steps = epochs ×
    steps per epoch, all taken; step and cosine one per epoch."""
    for name, per_epoch in (("one_cycle", STEPS), ("cosine", 1), ("step", 1)):
        counts = []
        train(
            spec(epochs=EPOCHS, lr=LR0, **SCHEDULES[name]),
            data,
            on_checkpoint=lambda state, c=counts: c.append(state["schedule"]["last_epoch"]),
            checkpoint_every=1,
        )
        assert counts == [e * per_epoch for e in range(1, EPOCHS + 1)], name
    one_cycle = make_schedule(
        make_optimizer(torch.nn.Linear(2, 2), "adam", LR0, 0.0, False),
        TrainConfig(epochs=EPOCHS, batch_size=32, lr=LR0, **SCHEDULES["one_cycle"]),
        n_train=120,
    )
    assert one_cycle is not None and one_cycle.scheduler.total_steps == EPOCHS * STEPS


def test_none_makes_no_scheduler_and_logs_no_learning_rate(data: DeviceData) -> None:
    optimizer = make_optimizer(torch.nn.Linear(2, 2), "sgd", LR0, 0.0, False)
    assert make_schedule(optimizer, TrainConfig(lr=LR0), n_train=120) is None
    assert [g["lr"] for g in optimizer.param_groups] == [LR0, LR0]
    run = spec(epochs=2, lr=LR0)
    training = StackTraining([run], data, [None], lambda: False)
    assert training.lane([0], 1).schedule is None
    states: list[dict] = []
    result = train(run, data, on_checkpoint=states.append, checkpoint_every=1)
    assert all(LR not in row for row in result.history)
    assert all("schedule" not in state for state in states)


def test_a_schedule_changes_no_number_until_it_changes_the_learning_rate(
    data: DeviceData,
) -> None:
    """Step at lr·0.5 from epoch 4 on: epochs 1–3 train at the constant lr of `none`, bit for
    bit (the scheduler itself touches nothing else: no generator, no weight, no order); from
    epoch 4 on, the lower lr trains otherwise."""
    variant = Variant(dropout=0.2, l2=1e-3)
    constant = train(spec(variant, epochs=5, lr=LR0), data)
    stepped = train(
        spec(variant, epochs=5, lr=LR0, lr_schedule="step", lr_step_size=3, lr_gamma=0.5), data
    )

    def measured(row: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in row.items() if k not in (*TIMINGS, LR)}

    assert [measured(r) for r in stepped.history[:3]] == [measured(r) for r in constant.history[:3]]
    assert [r[LR] for r in stepped.history] == [LR0, LR0, LR0, LR0 / 2, LR0 / 2]
    assert measured(stepped.history[3]) != measured(constant.history[3])


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_resumed_schedule_continues_bit_for_bit(noisy: DeviceData, name: str) -> None:
    """Seeds interrupted after their epoch-2 checkpoints, the checkpoints written and read back
    as `checkpoint.py` does (`torch.load(weights_only=True)`), continue in stacks of another
    make-up to the numbers, learning rates included, of an uninterrupted stack."""
    variant = EVERYTHING.model_copy(update={"patience": None})
    specs = [spec(variant, seed=s, epochs=EPOCHS, lr=LR0, **SCHEDULES[name]) for s in range(3)]
    whole = train_stack(specs, noisy)
    saved: dict[int, dict] = {}

    def keep(i: int, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        saved.setdefault(i, torch.load(buffer, weights_only=True))
        if len(saved) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stack(specs, noisy, on_checkpoint=keep, checkpoint_every=2)
    assert all(len(state["history"]) == 2 and "schedule" in state for state in saved.values())
    [one] = train_stack([specs[1]], noisy, resume=[saved[1]])
    zero, two = train_stack([specs[0], specs[2]], noisy, resume=[saved[0], saved[2]])
    for a, b in zip(whole, (zero, one, two), strict=True):
        assert_same_run(a, b)
        assert [r[LR] for r in b.history] == [r[LR] for r in a.history]


def test_a_checkpoint_without_the_schedules_state_is_refused(noisy: DeviceData) -> None:
    states: list[dict] = []
    train(spec(epochs=3, lr=LR0), noisy, on_checkpoint=states.append, checkpoint_every=1)
    with pytest.raises(ValueError, match="schedule"):
        train(spec(epochs=3, lr=LR0, lr_schedule="cosine"), noisy, resume=states[0])


@pytest.mark.parametrize("name", ["step", "one_cycle"])
def test_seeds_leaving_a_shared_lane_keep_their_schedule(
    noisy: DeviceData, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All seeds in one lane, as on a GPU (here on the CPU, where the stacked MLP computes
    each seed's products as it does alone): one scheduler over the lane's optimizer. Seeds stop
    early at different epochs, and the lane is rebuilt without them, its scheduler from where
    the old one was; every seed ends as it does alone."""
    monkeypatch.setattr(trainer, "lanes_for", lambda device, settings, members: [members])
    settings = {"epochs": 12, "lr": 0.05, **SCHEDULES[name]}
    stack = train_stack([spec(EVERYTHING, seed=s, **settings) for s in range(4)], noisy)
    stops = {int(r.summary["epochs_run"]) for r in stack}
    assert len(stops) > 1, "the seeds should stop at different epochs for this test to bite"
    for seed, together in enumerate(stack):
        assert_same_run(train(spec(EVERYTHING, seed=seed, **settings), noisy), together)


def test_one_cycle_with_a_rise_of_one_step_or_none_is_refused_before_training() -> None:
    few = TrainConfig(epochs=2, batch_size=64, lr_schedule="one_cycle", lr_pct_start=0.25)
    assert one_cycle_rise(few, n_train=256) is None  # 0.25 × 2 × 4 = 2 steps
    why = one_cycle_rise(few, n_train=128)  # 0.25 × 2 × 2 = 1 step
    assert why is not None and why.startswith("train.lr_pct_start: 0.25 of one_cycle's 4 steps")
    assert one_cycle_rise(few.model_copy(update={"lr_schedule": "cosine"}), n_train=1) is None
    pool = SimpleNamespace(meta={"sizes": {"train": 128}})
    run = spec(epochs=2, batch_size=64, lr_schedule="one_cycle", lr_pct_start=0.25)
    with pytest.raises(ConfigError, match="train.lr_pct_start"):
        check_applicable([run], pool)  # type: ignore[arg-type]
