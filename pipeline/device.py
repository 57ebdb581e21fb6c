"""Where training runs: the device, and the prepared splits moved onto it once."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import Prepared, Split
from .errors import ConfigError


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when there is one, else the CPU; an explicit choice must exist."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {requested!r} but torch sees no CUDA device")
    return device


@dataclass(frozen=True)
class DeviceSplit:
    x: torch.Tensor  # (N, D) float32 on the device
    y: torch.Tensor  # (N,) int64 on the device

    @classmethod
    def of(cls, split: Split, device: torch.device) -> DeviceSplit:
        return cls(torch.from_numpy(split.x).to(device), torch.from_numpy(split.y).to(device))

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DeviceData:
    """The prepared splits, moved once onto the training device."""

    train: DeviceSplit
    val: DeviceSplit
    test: DeviceSplit
    n_features: int
    n_classes: int
    input_shape: tuple[int, ...] = ()  # one example's shape before flattening
    raw_zero: float | None = None  # a raw 0 after normalising (`prepare`), for padding crops

    @classmethod
    def of(cls, prepared: Prepared, device: torch.device) -> DeviceData:
        return cls(
            DeviceSplit.of(prepared.train, device),
            DeviceSplit.of(prepared.val, device),
            DeviceSplit.of(prepared.test, device),
            prepared.n_features,
            prepared.n_classes,
            prepared.input_shape,
            prepared.meta.get("raw_zero"),
        )

    @property
    def device(self) -> torch.device:
        return self.train.x.device
