"""The optimizer's update called without torch.compile's bookkeeping: the same numbers as
`step()`, and neither training nor the check before it loads torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from pipeline.training import optimizer_calls
from pipeline.training.regularization import make_optimizer
from tests.support.repo import REPO


def trained(name: str, plain_calls: bool) -> tuple[list[torch.Tensor], list[dict]]:
    """Five steps on a small network; its parameters and the optimizer's state after them."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = make_optimizer(net, name, lr=0.05, weight_decay=0.1, decay_bias=False)
    batches = torch.Generator().manual_seed(1)
    for _ in range(5):
        if plain_calls:
            optimizer_calls.zero_grad(optimizer)
        else:
            optimizer.zero_grad(set_to_none=True)
        x = torch.randn(16, 12, generator=batches)
        nn.functional.cross_entropy(net(x), torch.arange(16) % 3).backward()
        if plain_calls:
            optimizer_calls.step(optimizer)
        else:
            optimizer.step()
    state = [{k: v.clone() for k, v in optimizer.state[p].items()} for p in net.parameters()]
    return [p.detach().clone() for p in net.parameters()], state


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_the_update_is_the_optimizers_own_bit_for_bit(name: str) -> None:
    params, state = trained(name, plain_calls=True)
    reference_params, reference_state = trained(name, plain_calls=False)
    assert all(torch.equal(a, b) for a, b in zip(params, reference_params, strict=True))
    for ours, theirs in zip(state, reference_state, strict=True):
        assert ours.keys() == theirs.keys() and ours  # momentum, or Adam's moments and step
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    # and the steps moved the weights: the comparison is not of two untouched networks
    torch.manual_seed(0)
    untouched = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    assert not torch.equal(params[0], untouched[0].weight)


def test_training_and_its_checks_leave_torch_compile_unloaded() -> None:
    """In a fresh process: the check before training (the network built and run once), then
    a seed trained with each optimizer, with dropout and weight decay; torch._dynamo stays out
    (its import costs as much as torch's)."""
    program = """
import sys
from pipeline.core.variant import Variant
from pipeline.training.applicable import _built
from pipeline.training.device import DeviceData
from tests.support.training import CPU, problem, spec, train

data = DeviceData.of(problem(), CPU)
for optimizer in ("sgd", "adam", "adamw"):
    run = spec(Variant(dropout=0.5, weight_decay=0.01, optimizer=optimizer))
    _built(run.architecture((10,), 3))
    train(run, data)
print("torch._dynamo" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr
