"""Where training runs: the device, the processor behind it, and the prepared splits moved
onto it once. torch is imported where it is used: the processor of a CPU is read without it
(`python -m pipeline machine-note`)."""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from ..data.prepared import Normalization, Pool, Prepared, Split
from ..data.splits import draw

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
    """A split on the device: shared by a lane's seeds, x (N, D) and y (N,); or one per seed,
    x (K, N, D) and y (K, N), when each seed drew its own."""

    x: torch.Tensor  # float32 on the device
    y: torch.Tensor  # int64 on the device

    @classmethod
    def of(cls, split: Split, device: torch.device) -> DeviceSplit:
        import torch

        return cls(torch.from_numpy(split.x).to(device), torch.from_numpy(split.y).to(device))

    @classmethod
    def stacked(cls, splits: list[DeviceSplit]) -> DeviceSplit:
        import torch

        return cls(torch.stack([s.x for s in splits]), torch.stack([s.y for s in splits]))

    @property
    def per_seed(self) -> bool:
        return self.y.dim() == 2

    def __len__(self) -> int:
        return self.y.shape[-1]


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
    # what the splits' raw inputs went through, which the logged model applies to its inputs
    normalization: Normalization = field(default_factory=Normalization.identity)

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
            prepared.normalization,
        )

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    @classmethod
    def stacked(cls, each: list[DeviceData]) -> DeviceData:
        """Seed k's splits `each[k]` as one, each split (K, N, D), for a lane of K seeds."""
        first = each[0]
        return cls(
            *(DeviceSplit.stacked([getattr(d, s) for d in each]) for s in ("train", "val", "test")),
            first.n_features,
            first.n_classes,
            first.input_shape,
            None,  # each seed's own: `for_seed(seed).raw_zero`, `for_seed(seed).normalization`
        )

    def for_stack(self, seeds: list[int]) -> DeviceData:
        """What a stack of `seeds` trains on: these, shared by every seed."""
        return self

    def for_seed(self, seed: int) -> DeviceData:
        """The splits seed `seed` trains on: these, shared by every seed."""
        return self

    def for_lane(self, seeds: list[int]) -> DeviceData:
        """The splits of a lane of `seeds`: these, shared."""
        return self


@dataclass
class SeedSplits:
    """Each seed's splits on the training device, drawn from the pool (`splits.draw`) when
    the seed first asks; under `splits: fixed` one draw serves every seed. The splits of the
    stack that trains are kept (the next variant's stack has the same seeds); those of
    other seeds are let go, so a process holds one stack's splits at a time."""

    pool: Pool
    device: torch.device
    _drawn: dict[int | None, DeviceData] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.pool.n_features

    @property
    def n_classes(self) -> int:
        return self.pool.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.pool.input_shape

    def _key(self, seed: int) -> int | None:
        return None if self.pool.meta["splits"] == "fixed" else seed

    def for_stack(self, seeds: list[int]) -> SeedSplits:
        """These splits, holding only those of `seeds` from now on."""
        wanted = {self._key(seed) for seed in seeds}
        for key in set(self._drawn) - wanted:
            del self._drawn[key]
        return self

    def for_seed(self, seed: int) -> DeviceData:
        key = self._key(seed)
        if key not in self._drawn:
            self._drawn[key] = DeviceData.of(draw(self.pool, seed), self.device)
        return self._drawn[key]

    def for_lane(self, seeds: list[int]) -> DeviceData:
        """The splits of a lane of `seeds`: one seed's, or all shared under `fixed`; else
        each split stacked seed by seed, (K, N, D), for a batched network."""
        each = [self.for_seed(seed) for seed in seeds]
        return each[0] if all(d is each[0] for d in each) else DeviceData.stacked(each)


# What the trainer takes: splits shared by every seed, or each seed's drawn from the pool.
TrainingData = DeviceData | SeedSplits
