"""An example of your own network: `model.network: networks.example:build` in params.yaml
(or `-S model.network=networks.example:build`, `-P network=networks.example:build`).

The study calls `build` once per seed, after seeding torch, and trains what it returns. The
contract:
- it receives one example's shape (`input_shape`, (C, H, W) for images), the number of classes,
  and the variant's dropout: `dropout`, a rate (or a tuple, when the variant gives one rate per
  hidden block), and `input_dropout`, a rate;
- it returns a `torch.nn.Module` that maps (B, *input_shape) to (B, n_classes) logits;
- dropout reaches the network as `nn.Dropout` modules at the rates received, and only there
  (each seed then draws its own masks); a variant with dropout on a network without it is
  refused before anything trains;
- penalties, weight decay and max-norm act on the weights of its `nn.Linear` and `nn.Conv*`
  layers, and on biases and normalisation parameters only with `penalize_bias: true`.

This file is in `networks/`, which the train stages depend on: editing it retrains.
"""

from __future__ import annotations

from torch import nn


def build(
    input_shape: tuple[int, ...],
    n_classes: int,
    dropout: float | tuple[float, ...],
    input_dropout: float,
) -> nn.Module:
    """Two convolutional blocks with batch normalisation, then global average pooling."""
    channels = input_shape[0]
    rates = dropout if isinstance(dropout, tuple) else (dropout, dropout)
    if len(rates) != 2:
        raise ValueError(f"this network has 2 hidden blocks; got {len(rates)} dropout rates")
    return nn.Sequential(
        nn.Dropout(input_dropout),
        nn.Conv2d(channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(rates[0]),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(rates[1]),
        nn.Linear(32, n_classes),
    )
