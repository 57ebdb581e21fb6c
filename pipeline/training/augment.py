"""Data augmentation of image mini-batches, on the training device: a random crop of the image
padded by `crop` pixels on each side (Krizhevsky et al. 2012; He et al. 2016) and a horizontal
flip with probability ½, each example its own draw from its seed's generator.

Only the training steps see augmented images; every measured loss (the gap's train loss
included) is on the un-augmented splits.
"""

from __future__ import annotations

import torch


def augment(
    x: torch.Tensor,
    shape: tuple[int, ...],
    crop: int,
    flip: bool,
    generator: torch.Generator,
    fill: float,
) -> torch.Tensor:
    """A mini-batch of flat images x (B, C·H·W), augmented: (B, C·H·W), a new tensor.

    Padding takes the value `fill`: the normalised value of a raw 0 (black), as a crop of the
    raw image padded with zeros and then normalised would have."""
    b = len(x)
    images = x.view(b, *shape)
    _, h, w = shape
    if crop > 0:
        padded = torch.nn.functional.pad(images, (crop, crop, crop, crop), value=fill)
        offsets = torch.randint(
            0, 2 * crop + 1, (2, b), generator=generator, device=x.device
        )  # (rows, cols) per example
        rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        # (B, H, W, C) gathered per example, then back to (B, C, H, W)
        images = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        images = images.permute(0, 3, 1, 2)
    if flip:
        flipped = torch.rand(b, generator=generator, device=x.device) < 0.5
        images = torch.where(flipped[:, None, None, None], images.flip(-1), images)
    return images.reshape(b, -1)
