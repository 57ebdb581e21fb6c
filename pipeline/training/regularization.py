"""The arithmetic of the techniques that act in training: the objective (label smoothing,
penalties), weight decay and max-norm; which parameters each touches, and how. (Dropout acts
in the network, see `model`; early stopping in the trainer's loop.)

The training objective of a mini-batch is

    objective = cross-entropy against the targets, smoothed when label_smoothing ε > 0
                + penalty

Label smoothing (Szegedy et al. 2016) trains against targets that put 1 − ε + ε/C on the true
class and ε/C on each of the C − 1 others. Like a penalty it changes what is minimised, not
what is measured: the *data loss* of every definition stays the plain cross-entropy.

The penalty added to the loss is

    penalty = λ1·Σ|w| + λ2·Σw²

summed over the *penalised parameters*: the weights of the linear and convolutional layers, in
any network, plus their biases and the normalisation layers' scales and shifts only when the
variant sets `penalize_bias`. λ1 = `l1`, λ2 = `l2`; elastic net is both.
Note Σw², not ½Σw²: an L2 penalty λ2 adds 2·λ2·w to the gradient.

Optimizer weight decay is kept apart from the penalty. It acts on the same parameter set:
- sgd / adam: *coupled*, the optimizer adds `weight_decay`·w to the gradient (for SGD the same
  as an L2 penalty with λ2 = weight_decay/2; for Adam it is then rescaled by the adaptive step);
- adamw: *decoupled*, w ← w − lr·weight_decay·w, outside the adaptive step (Loshchilov & Hutter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.variant import Variant
from . import optimizer_calls  # noqa: F401  (once imported, constructors skip torch._dynamo)
from .model import norm_parameters, weight_layers


def training_objective(
    logits: torch.Tensor, target: torch.Tensor, variant: Variant, penalised: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective to minimise, data loss) of one mini-batch: logits (B, C), target (B,).

    The data loss is the mean plain cross-entropy; the objective adds the variant's label
    smoothing and penalty to it, and is the data loss itself when both are off.
    """
    data_loss = F.cross_entropy(logits, target)
    objective = data_loss
    if variant.label_smoothing > 0:
        objective = F.cross_entropy(logits, target, label_smoothing=variant.label_smoothing)
    if variant.l1 > 0 or variant.l2 > 0:
        objective = objective + penalty(penalised, variant.l1, variant.l2)
    return objective, data_loss


def penalised_parameters(model: nn.Module, include_bias: bool) -> list[torch.Tensor]:
    """Linear and convolutional weights, and when asked their biases and the normalisation
    parameters; never anything else (in a stack, every seed's)."""
    params: list[torch.Tensor] = []
    for layer in weight_layers(model):
        params.append(layer.weight)
        if include_bias and layer.bias is not None:
            params.append(layer.bias)
    return params + (norm_parameters(model) if include_bias else [])


def penalty(params: list[torch.Tensor], l1: float, l2: float) -> torch.Tensor:
    """λ1·Σ|w| + λ2·Σw² over `params`, as a 0-d tensor on their device."""
    total = params[0].new_zeros(())
    if l1 > 0:
        total = total + l1 * sum(p.abs().sum() for p in params)
    if l2 > 0:
        total = total + l2 * sum(p.square().sum() for p in params)
    return total


def make_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    decay_bias: bool,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """The optimizer, with weight decay on the penalised parameters only."""
    decayed = penalised_parameters(model, include_bias=decay_bias)
    decayed_ids = {id(p) for p in decayed}
    rest = [p for p in model.parameters() if id(p) not in decayed_ids]
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    # fused: one kernel per step for all parameters (the step is memory-bound; its speed-up is
    # in docs/performance.md).
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, fused=True)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    raise ValueError(f"unknown optimizer {name!r}")


@torch.no_grad()
def apply_max_norm(model: nn.Module, max_norm: float) -> None:
    """Cap the L2 norm of each unit's incoming weights: each row of a linear layer's weight,
    each output channel's filter of a convolution."""
    for layer in weight_layers(model):
        layer.weight.renorm_(p=2, dim=0, maxnorm=max_norm)


@torch.no_grad()
def weight_statistics(model: nn.Module, zero_tol: float = 1e-3) -> dict[str, float]:
    """Fraction of the penalisable weights (linear, convolutional) with |w| < zero_tol, and
    their L2 norm; zeros when the network has none."""
    layers = weight_layers(model)
    if not layers:
        return {"near_zero_fraction": 0.0, "weight_norm": 0.0}
    weights = torch.cat([layer.weight.flatten() for layer in layers])
    return {
        "near_zero_fraction": float((weights.abs() < zero_tol).float().mean()),
        "weight_norm": float(weights.norm()),
    }
