"""Stacked seeds: a seed's numbers do not depend on the stack it trains in.

Every comparison here is exact (`==` on floats, `torch.equal` on weights), not within a
tolerance: on a CPU each seed's products, objective, optimizer step and max-norm run as they run
for the seed alone, its generators are its own, and its thread count is `train.threads`
whatever the stack, so nothing about a stack may change a single bit.
"""

from __future__ import annotations

import pytest
import torch

from pipeline.core.errors import TrainingDiverged
from pipeline.core.variant import Variant
from pipeline.training import seed_state
from pipeline.training.device import DeviceData
from pipeline.training.epoch import Compute, evaluate, train_one_epoch
from pipeline.training.regularization import make_optimizer
from pipeline.training.stacks import stack_of
from pipeline.training.trainer import TrainResult, train_stack
from tests.support.training import CPU, EVERYTHING, assert_same_run, problem, spec, train


@pytest.fixture(scope="module")
def noisy() -> DeviceData:
    return DeviceData.of(problem(random_labels=True), CPU)


def test_a_seed_trains_the_same_alone_and_inside_a_stack_of_five(noisy: DeviceData) -> None:
    settings = {"epochs": 12, "lr": 0.05}
    stack = train_stack([spec(EVERYTHING, seed=s, **settings) for s in range(5)], noisy)
    stops = {int(r.summary["epochs_run"]) for r in stack}
    assert len(stops) > 1, "the seeds should stop at different epochs for this test to bite"
    for seed in (0, 2, 4):
        assert_same_run(train(spec(EVERYTHING, seed=seed, **settings), noisy), stack[seed])


def test_a_seed_does_not_depend_on_its_neighbours_or_its_place(noisy: DeviceData) -> None:
    settings = {"epochs": 6, "lr": 0.05}
    first = train_stack([spec(EVERYTHING, seed=s, **settings) for s in (7, 1, 2)], noisy)
    second = train_stack([spec(EVERYTHING, seed=s, **settings) for s in (3, 7)], noisy)
    assert_same_run(first[0], second[1])


def test_seeds_one_after_another_equal_seeds_side_by_side(noisy: DeviceData) -> None:
    side_by_side = train_stack([spec(EVERYTHING, seed=s, epochs=6) for s in (0, 1, 2)], noisy)
    in_turn = train_stack(
        [spec(EVERYTHING, seed=s, epochs=6, parallel=1) for s in (0, 1, 2)], noisy
    )
    for a, b in zip(side_by_side, in_turn, strict=True):
        assert_same_run(a, b)


def test_each_seed_has_its_own_history_and_stopping_point(noisy: DeviceData) -> None:
    results = train_stack([spec(EVERYTHING, seed=s, epochs=12, lr=0.05) for s in range(3)], noisy)
    for result in results:
        assert len(result.history) == int(result.summary["epochs_run"])
        best = int(result.summary["best_epoch"])
        if result.stopped_early:  # patience 2: two epochs without improvement, then out
            assert len(result.history) == best + 2
    assert len({tuple(r["val_loss"] for r in res.history) for res in results}) == 3


def test_a_stack_resumed_in_another_make_up_continues_bit_for_bit(noisy: DeviceData) -> None:
    """Seeds interrupted after their epoch-2 checkpoints continue each in a stack of another
    make-up (seed 1 alone, seeds 0 and 2 together) to the results of an uninterrupted stack."""
    variant = EVERYTHING.model_copy(update={"patience": None})
    specs = [spec(variant, seed=s, epochs=5) for s in range(3)]
    whole = train_stack(specs, noisy)
    saved: dict[int, dict] = {}

    def keep(i: int, state: dict) -> None:
        saved.setdefault(i, state)  # lanes move on independently: keep each seed's epoch 2
        if len(saved) == 3:
            raise KeyboardInterrupt  # interrupted once every seed has its epoch-2 checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_stack(specs, noisy, on_checkpoint=keep, checkpoint_every=2)
    [one] = train_stack([specs[1]], noisy, resume=[saved[1]])
    zero, two = train_stack([specs[0], specs[2]], noisy, resume=[saved[0], saved[2]])
    for a, b in zip(whole, (zero, one, two), strict=True):
        assert_same_run(a, b)


def test_seeds_resumed_from_different_epochs_share_a_call(noisy: DeviceData) -> None:
    variant = EVERYTHING.model_copy(update={"patience": None})
    specs = [spec(variant, seed=s, epochs=4) for s in range(2)]
    whole = train_stack(specs, noisy)
    saved: dict[int, dict] = {}
    train_stack(
        [specs[0]],
        noisy,
        on_checkpoint=lambda i, state: saved.setdefault(0, state),
        checkpoint_every=1,
    )
    # seed 0 from its epoch-1 checkpoint, seed 1 from the start: two groups in one call
    resumed = train_stack(specs, noisy, resume=[saved[0], None])
    for a, b in zip(whole, resumed, strict=True):
        assert_same_run(a, b)


def test_every_seed_that_diverges_is_named_with_its_own_epoch(noisy: DeviceData) -> None:
    results = train_stack([spec(optimizer="sgd", lr=1e6, seed=s) for s in (4, 5)], noisy)
    assert all(isinstance(r, TrainingDiverged) for r in results)
    assert [r.seed for r in results] == [4, 5] and all(r.epoch >= 1 for r in results)


def test_a_seed_that_diverges_stops_alone_and_the_others_train_on(noisy: DeviceData) -> None:
    """Seeds 0 and 1 continue from their epoch-1 checkpoints, seed 0's weights poisoned with a
    NaN: seed 0 diverges at epoch 2 and seed 1 trains to the end it reaches uninterrupted."""
    variant = EVERYTHING.model_copy(update={"patience": None})
    specs = [spec(variant, seed=s, epochs=4) for s in range(2)]
    whole = train_stack(specs, noisy)
    saved: dict[int, dict] = {}
    train_stack(specs, noisy, on_checkpoint=saved.setdefault, checkpoint_every=1)
    model = dict(saved[0]["model"])
    first = next(k for k, v in model.items() if v.is_floating_point())
    model[first] = torch.full_like(model[first], float("nan"))
    poisoned = {**saved[0], "model": model}
    zero, one = train_stack(specs, noisy, resume=[poisoned, saved[1]])
    assert isinstance(zero, TrainingDiverged)
    assert (zero.seed, zero.epoch) == (0, 2) and "not finite" in zero.reason
    assert isinstance(one, TrainResult)
    assert_same_run(whole[1], one)


def test_a_stack_holds_one_variant() -> None:
    data = DeviceData.of(problem(), CPU)
    with pytest.raises(ValueError, match="one variant"):
        train_stack([spec(Variant(l2=1e-3), seed=0), spec(Variant(), seed=1)], data)


def one_epoch_of(seeds: list[int], splits: list[DeviceData]) -> tuple[list, list, list]:
    """One training epoch of `seeds` as one lane (one MLPStack), seed k on `splits[k]`, the
    splits stacked per seed as on a GPU under `data.splits: per_seed`: each seed's summed
    loss, its val (loss, accuracy) and its weights."""
    specs = [spec(EVERYTHING, seed=s) for s in seeds]
    arch = specs[0].architecture((10,), 3)
    states = [seed_state.start(s, arch, CPU) for s in specs]
    stack = stack_of(arch, [s.state for s in states])
    v = specs[0].variant
    optimizer = make_optimizer(stack, "adamw", 0.01, v.weight_decay, v.penalize_bias, 0.9)
    data = splits[0] if len(splits) == 1 else DeviceData.stacked(splits)
    running = train_one_epoch(
        Compute.of(stack),
        optimizer,
        data.train,
        32,
        [s.shuffle for s in states],
        v,
        [s.dropout for s in states],
    )
    loss, accuracy = evaluate(Compute.of(stack), data.val)
    weights = [stack.seed_state(k) for k in range(len(seeds))]
    return running.tolist(), list(zip(loss.tolist(), accuracy.tolist(), strict=True)), weights


def test_seeds_each_on_their_own_split_in_one_lane_train_as_each_alone() -> None:
    own = [DeviceData.of(problem(seed=s), CPU) for s in (0, 1)]
    running, val, weights = one_epoch_of([5, 6], own)
    for k, seed in enumerate((5, 6)):
        alone_running, alone_val, alone_weights = one_epoch_of([seed], [own[k]])
        assert running[k] == alone_running[0] and val[k] == alone_val[0]
        assert all(torch.equal(weights[k][n], alone_weights[0][n]) for n in weights[k])
