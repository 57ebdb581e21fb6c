"""Penalties, optimizer weight decay, max-norm and weight statistics, checked against numbers
worked out by hand in this file (never against what the code printed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.core.architecture import Architecture
from pipeline.core.techniques import weight_decay_kind
from pipeline.training.model import build_mlp
from pipeline.training.regularization import (
    apply_max_norm,
    make_optimizer,
    penalised_parameters,
    penalty,
    weight_statistics,
)

W1 = [[0.5, -1.0, 0.0], [2.0, 0.25, -0.5]]
B1 = [0.1, -0.2]
W2 = [[1.5, -0.75], [0.0, 3.0]]
B2 = [-1.0, 0.5]


def hand_set(w1=W1, b1=B1, w2=W2, b2=B2) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w1))
        model[0].bias.copy_(torch.tensor(b1))
        model[2].weight.copy_(torch.tensor(w2))
        model[2].bias.copy_(torch.tensor(b2))
    return model


def small_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    arch = Architecture(
        n_inputs=5, hidden_sizes=(4, 3), n_classes=2, dropout=(0.5, 0.0), input_dropout=0.2
    )
    return build_mlp(arch)


# --- penalty -----------------------------------------------------------------------------------


def test_penalty_matches_hand_computation_weights_only() -> None:
    model = hand_set()
    l1, l2 = 0.01, 0.1
    # Σ|w|: layer 1: 0.5 + 1.0 + 0.0 + 2.0 + 0.25 + 0.5 = 4.25; layer 2: 1.5 + 0.75 + 0 + 3 = 5.25
    sum_abs = 4.25 + 5.25  # 9.5
    # Σw²: layer 1: 0.25 + 1 + 0 + 4 + 0.0625 + 0.25 = 5.5625; layer 2: 2.25 + 0.5625 + 0 + 9
    sum_sq = 5.5625 + 11.8125  # 17.375
    expected = l1 * sum_abs + l2 * sum_sq  # 0.095 + 1.7375 = 1.8325
    assert expected == pytest.approx(1.8325)
    got = penalty(penalised_parameters(model, include_bias=False), l1, l2)
    assert got.ndim == 0
    assert float(got.detach()) == pytest.approx(expected, rel=1e-6)


def test_penalty_counts_biases_when_asked() -> None:
    model = hand_set()
    l1, l2 = 0.01, 0.1
    # biases: Σ|b| = 0.1 + 0.2 + 1.0 + 0.5 = 1.8; Σb² = 0.01 + 0.04 + 1.0 + 0.25 = 1.3
    expected = l1 * (9.5 + 1.8) + l2 * (17.375 + 1.3)  # 0.113 + 1.8675 = 1.9805
    assert expected == pytest.approx(1.9805)
    got = penalty(penalised_parameters(model, include_bias=True), l1, l2)
    assert float(got.detach()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("l1", "l2", "expected"),
    [
        (0.0, 0.0, 0.0),
        (0.2, 0.0, 0.2 * 9.5),  # pure L1
        (0.0, 0.5, 0.5 * 17.375),  # pure L2: Σw², not ½Σw²
    ],
)
def test_penalty_single_terms(l1: float, l2: float, expected: float) -> None:
    got = penalty(penalised_parameters(hand_set(), include_bias=False), l1, l2)
    assert float(got.detach()) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_penalty_gradient_is_l1_sign_plus_twice_l2_w() -> None:
    model = hand_set()
    l1, l2 = 0.03, 0.2
    params = penalised_parameters(model, include_bias=False)
    penalty(params, l1, l2).backward()
    # One weight written out: w = 2.0 -> 0.03·1 + 2·0.2·2.0 = 0.83; w = -0.75 -> -0.03 - 0.3
    assert float(model[0].weight.grad[1, 0]) == pytest.approx(0.83, rel=1e-6)
    assert float(model[2].weight.grad[0, 1]) == pytest.approx(-0.33, rel=1e-6)
    for p in params:
        expected = l1 * torch.sign(p.detach()) + 2 * l2 * p.detach()
        torch.testing.assert_close(p.grad, expected)
    # biases are not penalised, so the penalty leaves them no gradient
    assert model[0].bias.grad is None and model[2].bias.grad is None


# --- which parameters ----------------------------------------------------------------------------


def test_penalised_parameters_are_exactly_the_linear_weights() -> None:
    model = small_mlp()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    got = penalised_parameters(model, include_bias=False)
    assert [id(p) for p in got] == [id(m.weight) for m in linears]
    bias_ids = {id(m.bias) for m in linears}
    assert not bias_ids & {id(p) for p in got}


def test_penalised_parameters_include_biases_only_when_asked() -> None:
    model = small_mlp()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    got = {id(p) for p in penalised_parameters(model, include_bias=True)}
    assert got == {id(m.weight) for m in linears} | {id(m.bias) for m in linears}


def test_penalised_parameters_are_weights_and_only_when_asked_biases_and_norms() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, bias=False),
        nn.BatchNorm2d(2),
        nn.Flatten(),
        nn.Linear(8, 3),
        nn.LayerNorm(3),
        nn.Linear(3, 2),
    )
    conv, bn, first, norm, last = model[0], model[1], model[3], model[4], model[5]
    weights = [id(conv.weight), id(first.weight), id(last.weight)]
    assert [id(p) for p in penalised_parameters(model, include_bias=False)] == weights
    got = [id(p) for p in penalised_parameters(model, include_bias=True)]
    asked = [
        id(first.bias),
        id(last.bias),
        id(bn.weight),
        id(bn.bias),
        id(norm.weight),
        id(norm.bias),
    ]
    assert sorted(got) == sorted(weights + asked) and len(got) == len(set(got))


# --- optimizer weight decay ---------------------------------------------------------------------


def _zero_gradient_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """One step with every gradient present and exactly zero: only weight decay can act."""
    optimizer.zero_grad()
    loss = 0.0 * sum(p.sum() for p in model.parameters())
    loss.backward()
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    optimizer.step()


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("decay_bias", [False, True])
def test_make_optimizer_puts_decay_on_the_penalised_group_only(name: str, decay_bias: bool) -> None:
    model = small_mlp()
    opt = make_optimizer(model, name, lr=0.1, weight_decay=0.3, decay_bias=decay_bias)
    decayed, rest = opt.param_groups
    assert decayed["weight_decay"] == 0.3
    assert rest["weight_decay"] == 0.0
    linears = [m for m in model if isinstance(m, nn.Linear)]
    weights = {id(m.weight) for m in linears}
    biases = {id(m.bias) for m in linears}
    assert {id(p) for p in decayed["params"]} == (weights | biases if decay_bias else weights)
    assert {id(p) for p in rest["params"]} == (set() if decay_bias else biases)
    # every parameter is in exactly one group
    all_ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters())


def test_adamw_decay_is_decoupled_shrink_by_one_minus_lr_wd() -> None:
    model = hand_set()
    lr, wd = 0.1, 0.5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, "adamw", lr=lr, weight_decay=wd, decay_bias=False)
    _zero_gradient_step(model, opt)
    factor = 1 - lr * wd  # 0.95
    for key in ("0.weight", "2.weight"):
        torch.testing.assert_close(model.state_dict()[key], before[key] * factor)
    for key in ("0.bias", "2.bias"):
        assert torch.equal(model.state_dict()[key], before[key])


def test_adamw_decays_biases_too_when_asked() -> None:
    model = hand_set()
    before = model[0].bias.detach().clone()
    opt = make_optimizer(model, "adamw", lr=0.1, weight_decay=0.5, decay_bias=True)
    _zero_gradient_step(model, opt)
    torch.testing.assert_close(model[0].bias.detach(), before * 0.95)


def test_sgd_decay_is_coupled_w_minus_lr_wd_w() -> None:
    model = hand_set()
    lr, wd = 0.1, 0.5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, "sgd", lr=lr, weight_decay=wd, decay_bias=False, momentum=0.0)
    assert opt.param_groups[0]["momentum"] == 0.0
    _zero_gradient_step(model, opt)
    for key in ("0.weight", "2.weight"):
        w = before[key]
        torch.testing.assert_close(model.state_dict()[key], w - lr * wd * w)
    for key in ("0.bias", "2.bias"):
        assert torch.equal(model.state_dict()[key], before[key])


def test_sgd_passes_momentum() -> None:
    opt = make_optimizer(
        hand_set(), "sgd", lr=0.1, weight_decay=0.0, decay_bias=False, momentum=0.7
    )
    assert all(g["momentum"] == 0.7 for g in opt.param_groups)


def test_adam_decay_is_coupled_into_the_adaptive_step() -> None:
    # Adam's first step with gradient g moves each entry by lr·g/(|g| + eps) ≈ lr·sign(g).
    # Coupled decay makes g = wd·w, so a nonzero weight moves by about lr towards zero
    # (not by lr·wd·w as decoupled decay would), and an exactly-zero weight does not move.
    model = hand_set()
    lr, wd = 0.01, 0.5
    before = model[0].weight.detach().clone()
    opt = make_optimizer(model, "adam", lr=lr, weight_decay=wd, decay_bias=False)
    _zero_gradient_step(model, opt)
    torch.testing.assert_close(
        model[0].weight.detach(), before - lr * torch.sign(before), atol=1e-6, rtol=0
    )
    assert torch.equal(model[0].bias.detach(), torch.tensor(B1))


def test_make_optimizer_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="rmsprop"):
        make_optimizer(hand_set(), "rmsprop", lr=0.1, weight_decay=0.0, decay_bias=False)


@pytest.mark.parametrize(
    ("optimizer", "weight_decay", "kind"),
    [
        ("sgd", 0.0, "none"),
        ("adam", 0.0, "none"),
        ("adamw", 0.0, "none"),
        ("sgd", 0.1, "coupled"),
        ("adam", 1e-4, "coupled"),
        ("adamw", 1.0, "decoupled"),
    ],
)
def test_weight_decay_kind(optimizer: str, weight_decay: float, kind: str) -> None:
    assert weight_decay_kind(optimizer, weight_decay) == kind


# --- max-norm ------------------------------------------------------------------------------------


def test_apply_max_norm_caps_every_row_and_leaves_small_rows_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    c = 1.0
    with torch.no_grad():
        # rows alternate between norm 3 (above c) and norm 0.5 (below c)
        for layer in (model[0], model[2]):
            w = torch.randn_like(layer.weight)
            w = w / w.norm(dim=1, keepdim=True)
            scale = torch.tensor([3.0 if i % 2 == 0 else 0.5 for i in range(w.shape[0])])
            layer.weight.copy_(w * scale[:, None])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_max_norm(model, c)
    for key in ("0.weight", "2.weight"):
        w_old, w_new = before[key], model.state_dict()[key]
        norms_old, norms_new = w_old.norm(dim=1), w_new.norm(dim=1)
        assert (norms_new <= c + 1e-6).all()
        small = norms_old <= c
        assert small.any() and (~small).any()
        assert torch.equal(w_new[small], w_old[small])
        # big rows are scaled down onto the sphere, keeping their direction
        torch.testing.assert_close(
            norms_new[~small], torch.full_like(norms_new[~small], c), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            w_new[~small], w_old[~small] / norms_old[~small, None] * c, atol=1e-5, rtol=0
        )
    for key in ("0.bias", "2.bias"):
        assert torch.equal(model.state_dict()[key], before[key])


# --- weight statistics ---------------------------------------------------------------------------


def test_weight_statistics_match_hand_computation() -> None:
    model = hand_set(
        w1=[[0.0, 3.0, 0.0005], [-4.0, 0.002, -0.0009]],
        w2=[[0.0, 0.0], [0.0, 0.0]],
        b1=[0.0, 0.0],  # biases are not weights: they must not count as near-zero
        b2=[0.0, 0.0],
    )
    stats = weight_statistics(model)  # zero_tol 1e-3
    # |w| < 1e-3: 0.0, 0.0005, -0.0009 in layer 1 and all four of layer 2 -> 7 of 10
    assert stats["near_zero_fraction"] == pytest.approx(0.7)
    expected_norm = (3.0**2 + 0.0005**2 + 4.0**2 + 0.002**2 + 0.0009**2) ** 0.5
    assert stats["weight_norm"] == pytest.approx(expected_norm, rel=1e-6)
    # a looser tolerance makes 0.002 near zero as well
    assert weight_statistics(model, zero_tol=0.01)["near_zero_fraction"] == pytest.approx(0.8)
