"""Where training runs: the device, the processor behind it, and the prepared splits moved
onto it once. torch is imported where it is used: the processor of a CPU is read without it
(`python -m pipeline machine-note`)."""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .data import Prepared, Split
from .errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when there is one, else the CPU; an explicit choice must exist."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {requested!r} but torch sees no CUDA device")
    return device


@functools.cache
def processor(device: str = "cpu") -> str:
    """The processor behind `device` (`cpu`, `cuda`, `cuda:N`), in words: a GPU's name as
    torch gives it; a CPU's model name (on Linux the `model name` of /proc/cpuinfo, elsewhere
    the platform's processor, else its architecture)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class DeviceSplit:
    x: torch.Tensor  # (N, D) float32 on the device
    y: torch.Tensor  # (N,) int64 on the device

    @classmethod
    def of(cls, split: Split, device: torch.device) -> DeviceSplit:
        import torch

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
