"""torch.optim's optimizers, called without loading torch.compile's front end.

torch 2.14 marks `Optimizer.add_param_group` for torch.compile (`torch._disable_dynamo`) and
wraps every `step()` in `_use_grad_for_differentiable`; both import `torch._dynamo` on their
first call. That import takes as long as torch's own, and Python's exit is about a second
longer with it loaded (docs/performance.md): every stage, a process of its own, would pay both
for a compiler that training here does not use (`train.compile: true` uses it, and pays).

What is left out is only torch.compile's bookkeeping, and the step hooks and profiler label
that `step()` runs around the update (nothing here registers a hook). The update is the
optimizer's own `step`, under no_grad as `step()` runs it: the same arithmetic on the same state
(tests/unit/training/test_optimizer_calls.py checks it bit for bit against `step()`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch


def _no_compile_marks() -> None:
    """Tell `add_param_group` (called by every optimizer's constructor) that its form with
    torch.compile disabled is itself, as it is outside torch.compile. Where torch marks it
    otherwise than this expects, nothing changes: the import is then paid, no more."""
    plain = inspect.unwrap(torch.optim.Optimizer.add_param_group)
    if plain is not torch.optim.Optimizer.add_param_group:
        setattr(plain, "__dynamo_disable", plain)  # the attribute torch._disable_dynamo caches


_no_compile_marks()


@functools.cache
def _update(kind: type[torch.optim.Optimizer]) -> Callable[[torch.optim.Optimizer], object]:
    return inspect.unwrap(kind.step)


def step(optimizer: torch.optim.Optimizer) -> None:
    """`optimizer.step()`: the optimizer's own update, without its wrappers; marked as the
    wrapper a learning-rate scheduler puts around `step()` marks it, so that the scheduler
    knows the optimizer stepped before it did."""
    with torch.no_grad():
        _update(type(optimizer))(optimizer)
    optimizer._opt_called = True  # type: ignore[attr-defined]  # read by LRScheduler.step


def zero_grad(optimizer: torch.optim.Optimizer) -> None:
    """`optimizer.zero_grad(set_to_none=True)`: every parameter's gradient dropped."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
