"""The training loop on a tiny synthetic problem: determinism, the logged metrics against
independent recomputations, early stopping, divergence, penalties and devices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.errors import TrainingDiverged
from pipeline.core.variant import Variant
from pipeline.training.device import DeviceData, resolve_device
from pipeline.training.model import weight_layers
from pipeline.training.stack_training import EPOCH_METRICS
from tests.support.training import CPU, problem, spec, train


@pytest.fixture(scope="module")
def data() -> DeviceData:
    return DeviceData.of(problem(), CPU)


def test_same_spec_gives_bit_identical_runs(data: DeviceData) -> None:
    variant = Variant(dropout=0.3, input_dropout=0.1, l2=1e-3)  # dropout masks are seeded too
    a = train(spec(variant), data)
    b = train(spec(variant), data)
    timing = "epoch_seconds"
    assert [{k: v for k, v in r.items() if k != timing} for r in a.history] == [
        {k: v for k, v in r.items() if k != timing} for r in b.history
    ]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.summary["test_accuracy"] == b.summary["test_accuracy"]
    assert a.summary["test_loss"] == b.summary["test_loss"]


def test_other_seed_gives_another_run(data: DeviceData) -> None:
    a = train(spec(seed=0), data)
    c = train(spec(seed=1), data)
    assert [r["train_loss"] for r in a.history] != [r["train_loss"] for r in c.history]
    assert not torch.equal(a.model.state_dict()["0.weight"], c.model.state_dict()["0.weight"])


def test_history_rows_and_summary(data: DeviceData) -> None:
    seen: list[tuple[int, dict]] = []
    result = train(spec(), data, on_epoch=lambda epoch, row: seen.append((epoch, row)))
    assert len(result.history) == 3
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [r for _, r in seen] == result.history
    for row in result.history:
        assert tuple(row) == EPOCH_METRICS
        assert all(math.isfinite(v) for v in row.values())
        assert row["loss_gap"] == row["val_loss"] - row["train_loss"]
        assert row["accuracy_gap"] == row["train_accuracy"] - row["val_accuracy"]
        assert 0.0 <= row["train_accuracy"] <= 1.0 and 0.0 <= row["val_accuracy"] <= 1.0
    assert result.stopped_early is False
    assert result.summary["epochs_run"] == 3.0
    best = int(result.summary["best_epoch"])
    val_losses = [r["val_loss"] for r in result.history]
    assert best == 1 + int(np.argmin(val_losses))
    assert result.summary["best_val_loss"] == min(val_losses)
    assert result.summary["train_loss_last"] == result.history[-1]["train_loss"]
    assert result.device == "cpu"
    # the problem is learnable: training helps
    assert result.history[-1]["train_loss"] < math.log(3)


def test_logged_losses_and_test_score_match_recomputation(data: DeviceData) -> None:
    result = train(spec(epochs=4), data)
    model = result.model
    model.eval()
    best = int(result.summary["best_epoch"])
    row = result.history[best - 1]
    with torch.no_grad():
        train_logits = model(data.train.x)
        val_logits = model(data.val.x)
        test_logits = model(data.test.x)
    # result.model holds the best epoch's weights
    assert float(F.cross_entropy(train_logits, data.train.y)) == pytest.approx(
        row["train_loss"], rel=1e-5
    )
    assert float(F.cross_entropy(val_logits, data.val.y)) == pytest.approx(
        result.summary["best_val_loss"], rel=1e-5
    )
    train_acc = float((train_logits.argmax(1) == data.train.y).float().mean())
    assert train_acc == pytest.approx(row["train_accuracy"], abs=1e-6)
    test_acc = float((test_logits.argmax(1) == data.test.y).float().mean())
    assert test_acc == pytest.approx(result.summary["test_accuracy"], abs=1e-6)
    assert float(F.cross_entropy(test_logits, data.test.y)) == pytest.approx(
        result.summary["test_loss"], rel=1e-5
    )


def test_early_stopping_restores_the_best_epoch() -> None:
    data = DeviceData.of(problem(random_labels=True), CPU)
    result = train(spec(Variant(patience=1), epochs=20, optimizer="adam", lr=0.05), data)
    epochs_run = int(result.summary["epochs_run"])
    best = int(result.summary["best_epoch"])
    assert result.stopped_early is True
    assert epochs_run < 20
    assert epochs_run == best + 1  # patience 1: one epoch without improvement
    val_losses = [r["val_loss"] for r in result.history]
    assert val_losses[-1] >= val_losses[best - 1]
    # the model handed back is the best epoch's, not the last one's
    result.model.eval()
    with torch.no_grad():
        val_loss = float(F.cross_entropy(result.model(data.val.x), data.val.y))
    assert val_loss == pytest.approx(result.summary["best_val_loss"], rel=1e-5)
    assert val_loss != pytest.approx(val_losses[-1], rel=1e-5)


def test_without_patience_all_epochs_run_even_when_val_loss_rises() -> None:
    data = DeviceData.of(problem(random_labels=True), CPU)
    result = train(spec(Variant(), epochs=5, optimizer="adam", lr=0.05), data)
    assert result.stopped_early is False
    assert len(result.history) == 5
    assert result.summary["best_epoch"] < 5  # val loss rose, yet the best weights came back
    result.model.eval()
    with torch.no_grad():
        val_loss = float(F.cross_entropy(result.model(data.val.x), data.val.y))
    assert val_loss == pytest.approx(result.summary["best_val_loss"], rel=1e-5)


def test_divergence_raises_with_the_epoch(data: DeviceData) -> None:
    with pytest.raises(TrainingDiverged) as info:
        train(spec(optimizer="sgd", lr=1e6), data)
    assert isinstance(info.value.epoch, int) and 1 <= info.value.epoch <= 3
    assert "not finite" in str(info.value)
    assert f"epoch {info.value.epoch}" in str(info.value)


def test_a_loss_that_explodes_but_stays_finite_is_divergence(data: DeviceData) -> None:
    # Adam moves each weight by about lr per step whatever the gradient, so lr 1e6 throws
    # the weights to ~1e6: every logit is finite, the loss far above a uniform guess's ln 3.
    with pytest.raises(TrainingDiverged) as info:
        train(spec(lr=1e6), data)
    assert info.value.epoch == 1
    assert "over 100 × the chance level ln 3 = 1.1" in str(info.value)


def test_a_healthy_run_stays_far_below_the_divergence_threshold(data: DeviceData) -> None:
    # Random labels: nothing to learn, the network memorises; the worst a working run gets.
    result = train(spec(epochs=20, lr=0.05), DeviceData.of(problem(random_labels=True), CPU))
    assert max(row["train_loss"] for row in result.history) < 2 * math.log(3)


def sum_sq(model: nn.Module) -> float:
    return float(sum(layer.weight.detach().square().sum() for layer in weight_layers(model)))


def sum_abs(model: nn.Module) -> float:
    return float(sum(layer.weight.detach().abs().sum() for layer in weight_layers(model)))


def test_penalty_row(data: DeviceData) -> None:
    baseline = train(spec(Variant()), data)
    assert all(r["penalty"] == 0.0 for r in baseline.history)

    l2 = train(spec(Variant(l2=0.01)), data)
    assert all(r["penalty"] > 0 for r in l2.history)
    best = int(l2.summary["best_epoch"])
    # logged at the end of the best epoch, from the same weights the model now holds
    assert l2.history[best - 1]["penalty"] == pytest.approx(0.01 * sum_sq(l2.model), rel=1e-5)

    l1 = train(spec(Variant(l1=0.001)), data)
    best = int(l1.summary["best_epoch"])
    assert l1.history[best - 1]["penalty"] == pytest.approx(0.001 * sum_abs(l1.model), rel=1e-5)


def test_l2_penalty_shrinks_the_weights(data: DeviceData) -> None:
    plain = train(spec(Variant(), epochs=5), data)
    shrunk = train(spec(Variant(l2=0.05), epochs=5), data)
    assert sum_sq(shrunk.model) < sum_sq(plain.model)


def test_max_norm_holds_after_training(data: DeviceData) -> None:
    result = train(spec(Variant(max_norm=0.5), lr=0.05), data)
    for layer in weight_layers(result.model):
        assert (layer.weight.detach().norm(dim=1) <= 0.5 + 1e-5).all()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("setting", [{"precision": "bfloat16"}, {"compile": True}])
def test_bf16_and_compiled_runs_track_the_float32_run(data: DeviceData, setting: dict) -> None:
    """Both options change rounding, not the model: the curves stay close to float32 eager,
    the logged losses stay float32 data losses recomputable from the kept weights, and the
    run is still deterministic."""
    reference = train(spec(), data)
    a = train(spec(**setting), data)
    b = train(spec(**setting), data)
    assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]
    for ours, ref in zip(a.history, reference.history, strict=True):
        assert ours["train_loss"] == pytest.approx(ref["train_loss"], rel=0.05, abs=0.02)
        assert ours["val_loss"] == pytest.approx(ref["val_loss"], rel=0.05, abs=0.02)
    assert all(isinstance(k, str) and not k.startswith("_orig_mod") for k in a.model.state_dict())
    # The logged val loss of the kept (best) epoch is the float32 data loss of those weights.
    plain = nn.Sequential(*a.model).eval()
    with torch.no_grad():
        val = F.cross_entropy(plain(data.val.x), data.val.y).item()
    assert a.summary["best_val_loss"] == pytest.approx(val, rel=1e-6)
    hyper = spec(**setting).hyperparameters()
    assert {k: hyper[k] for k in setting} == setting
