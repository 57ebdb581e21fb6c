"""Where training runs: the device, the processor behind it, and the prepared splits moved
onto it once. torch is imported where it is used: the processor of a CPU is read without it
(`python -m pipeline machine-note`)."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, DataError
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


def split_bytes(pool: Pool) -> int:
    """What one seed's splits of `pool` take on the training device: every split's examples,
    x in float32 and y in int64."""
    return sum(pool.meta["sizes"].values()) * (4 * pool.n_features + 8)


def free_memory(device: torch.device) -> int | None:
    """Bytes free for the splits on `device`: a GPU's free memory (`torch.cuda.mem_get_info`);
    for the CPU, the memory the system has available (Linux's MemAvailable, else the free
    pages), within this process's cgroup limit where it has one. None where unknown."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    found = [n for n in (_system_available(), _cgroup_room()) if n is not None]
    return max(min(found), 0) if found else None


def _system_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # given in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # a system without these names
        return None


def _cgroup_room() -> int | None:
    """cgroup v2: what this process's group may still take (a container's limit)."""
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((cgroup / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def check_fits(pool: Pool, device: torch.device, available: int | None = None) -> None:
    """A DataError, one line, where one seed's splits of `pool` would not fit in the memory
    free on `device` (`available` bytes; by default `free_memory(device)`): said before
    anything trains, with what would fit. A stack of seeds holds a copy per seed
    (docs/data.md); one seed's is the least any training needs."""
    free = free_memory(device) if available is None else available
    need = split_bytes(pool)
    if free is None or need <= free:
        return
    n = sum(pool.meta["sizes"].values())
    per_example = need // n
    raise DataError(
        f"the prepared data does not fit on {device}: a seed's splits ({n:,} examples of "
        f"{pool.n_features:,} features) take {_bytes(need)}, and {device} has {_bytes(free)} "
        f"free, room for about {free // per_example:,} such examples; take fewer "
        "(data.train_size, a smaller dataset) or train on a device with more memory"
    )


def _bytes(n: int) -> str:
    """`n` bytes in the largest binary unit that keeps the number at least 1."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


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
