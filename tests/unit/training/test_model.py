"""The MLP: layout, dropout placement and rates, inverted-dropout scaling, JSON round trip."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pipeline.core.architecture import Architecture
from pipeline.training.model import ACTIVATIONS, build_mlp, weight_layers


def layout(model: nn.Sequential) -> list[tuple[str, float | None]]:
    return [(type(m).__name__, m.p if isinstance(m, nn.Dropout) else None) for m in model]


@pytest.mark.parametrize("batch", [1, 7])
def test_output_shape(batch: int) -> None:
    arch = Architecture(
        n_inputs=12, hidden_sizes=(8, 6), n_classes=5, dropout=(0.3, 0.1), input_dropout=0.2
    )
    model = build_mlp(arch)
    assert model(torch.randn(batch, 12)).shape == (batch, 5)
    widths = [(m.in_features, m.out_features) for m in weight_layers(model)]
    assert widths == [(12, 8), (8, 6), (6, 5)]


def test_no_dropout_modules_without_rates() -> None:
    model = build_mlp(Architecture(n_inputs=4, hidden_sizes=(3, 3), n_classes=2))
    assert layout(model) == [
        ("Linear", None),
        ("ReLU", None),
        ("Linear", None),
        ("ReLU", None),
        ("Linear", None),
    ]


def test_zero_rates_leave_dropout_out() -> None:
    arch = Architecture(
        n_inputs=4, hidden_sizes=(3, 3), n_classes=2, dropout=(0.0, 0.0), input_dropout=0.0
    )
    assert not any(isinstance(m, nn.Dropout) for m in build_mlp(arch))


def test_dropout_only_where_rate_is_nonzero_with_the_right_p() -> None:
    arch = Architecture(
        n_inputs=4, hidden_sizes=(3, 3), n_classes=2, dropout=(0.0, 0.4), input_dropout=0.2
    )
    assert layout(build_mlp(arch)) == [
        ("Dropout", 0.2),
        ("Linear", None),
        ("ReLU", None),
        ("Linear", None),
        ("ReLU", None),
        ("Dropout", 0.4),
        ("Linear", None),
    ]


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_activation(activation: str) -> None:
    model = build_mlp(
        Architecture(n_inputs=4, hidden_sizes=(3, 2), n_classes=2, activation=activation)
    )
    acts = [m for m in model if isinstance(m, ACTIVATIONS[activation])]
    assert len(acts) == 2


def test_dropout_rates_must_match_hidden_layers() -> None:
    with pytest.raises(ValueError):
        build_mlp(Architecture(n_inputs=4, hidden_sizes=(3, 3), n_classes=2, dropout=(0.5,)))


def test_eval_mode_is_deterministic_and_equals_the_network_without_dropout() -> None:
    torch.manual_seed(0)
    with_dropout = build_mlp(
        Architecture(
            n_inputs=10, hidden_sizes=(16, 8), n_classes=3, dropout=(0.5, 0.3), input_dropout=0.2
        )
    )
    plain = build_mlp(Architecture(n_inputs=10, hidden_sizes=(16, 8), n_classes=3))
    # Sequential indices differ (the dropout modules shift them): copy Linear by Linear.
    src, dst = weight_layers(with_dropout), weight_layers(plain)
    assert len(src) == len(dst) == 3
    with torch.no_grad():
        for a, b in zip(src, dst, strict=True):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
    x = torch.randn(64, 10)
    with_dropout.eval()
    plain.eval()
    first = with_dropout(x)
    assert torch.equal(first, with_dropout(x))
    torch.testing.assert_close(first, plain(x), rtol=0, atol=0)
    # and in train mode dropout really does change the output
    with_dropout.train()
    assert not torch.allclose(with_dropout(x), first)


def test_train_mode_input_dropout_scales_survivors_by_two() -> None:
    torch.manual_seed(1)
    model = build_mlp(Architecture(n_inputs=200, hidden_sizes=(4,), n_classes=2, input_dropout=0.5))
    drop = model[0]
    assert isinstance(drop, nn.Dropout)
    drop.train()
    out = drop(torch.ones(100, 200))  # 20,000 units
    kept = out != 0
    assert torch.equal(out[kept], torch.full_like(out[kept], 2.0))  # 1 / (1 - 0.5)
    assert float(kept.float().mean()) == pytest.approx(0.5, abs=0.02)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.04)  # expectation preserved


def test_train_mode_hidden_dropout_scales_survivors_by_two() -> None:
    torch.manual_seed(2)
    model = build_mlp(Architecture(n_inputs=8, hidden_sizes=(256,), n_classes=3, dropout=(0.5,)))
    drop = next(m for m in model if isinstance(m, nn.Dropout))
    seen: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        seen["in"], seen["out"] = inputs[0].detach(), output.detach()

    drop.register_forward_hook(hook)
    model.train()
    model(torch.randn(64, 8))
    x, y = seen["in"], seen["out"]
    kept = y != 0
    torch.testing.assert_close(y[kept], 2.0 * x[kept])
    active = x != 0  # after ReLU, some inputs are zero anyway
    frac_dropped = float((~kept & active).sum() / active.sum())
    assert frac_dropped == pytest.approx(0.5, abs=0.05)


def test_architecture_json_round_trip() -> None:
    arch = Architecture(
        n_inputs=784,
        hidden_sizes=(512, 256),
        n_classes=10,
        activation="gelu",
        dropout=(0.5, 0.25),
        input_dropout=0.2,
    )
    raw = json.loads(json.dumps(arch.to_json()))
    assert raw["hidden_sizes"] == [512, 256]
    back = Architecture.from_json(raw)
    assert back == arch
    assert isinstance(back.hidden_sizes, tuple) and isinstance(back.dropout, tuple)
    # the rebuilt network accepts the original's state dict
    torch.manual_seed(0)
    original = build_mlp(arch)
    rebuilt = build_mlp(back)
    rebuilt.load_state_dict(original.state_dict())
    x = torch.randn(3, 784)
    original.eval()
    rebuilt.eval()
    assert torch.equal(original(x), rebuilt(x))


def test_architecture_json_round_trip_defaults() -> None:
    arch = Architecture(n_inputs=3, hidden_sizes=(2,), n_classes=2)
    assert Architecture.from_json(json.loads(json.dumps(arch.to_json()))) == arch
