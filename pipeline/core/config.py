"""The study's configuration as typed, frozen models (`loading` reads params.yaml into them).

Every model forbids unknown keys, rejects NaN and infinity, and checks ranges, so a typo or a
bad value stops the program with one line that names the key before anything is trained or
tracked. Code below this module receives these objects, never dicts of strings.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from .architecture import BUILT_IN, hidden_blocks
from .errors import ConfigError
from .techniques import SWEPT
from .variant import Frozen, Optimizer, Rate, Variant

Dataset = Literal[
    "mnist-5k",
    "digits",
    "mnist",
    "fashion-mnist",
    "kmnist",
    "cifar10",
    "npz",
    "imagefolder",
    "csv",
    "parquet",
]
# torchvision's datasets, read from (or downloaded into) data.root; each has an official
# train/test division (`data.test_split: official`)
TORCHVISION = ("mnist", "fashion-mnist", "kmnist", "cifar10")
# The datasets read from the file or folder data.path names, and what it must be.
AT_PATH = {
    "npz": "the .npz file with arrays x and y",
    "imagefolder": "the folder of <class>/<image> files",
    "csv": "the .csv file, one row per example",
    "parquet": "the .parquet file, one row per example",
}
TABLES = ("csv", "parquet")

VARIANT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class DataConfig(Frozen):
    """Where the data comes from and how it is split (the `data` section)."""

    dataset: Dataset = "mnist-5k"
    root: str = "data/raw"  # torchvision datasets are read from / downloaded into this folder
    path: str | None = None  # the file or folder of npz, imagefolder, csv, parquet (AT_PATH)
    label_column: str | None = None  # csv, parquet: the column that holds each row's class
    download: bool = True  # allow torchvision to download when the files are not in root
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # test_split pool only
    # pool: the test split is drawn from the pool, as train and val are; official (torchvision
    # datasets): it is the dataset's own test set, and train and val are drawn from its train
    # set (val_fraction of it)
    test_split: Literal["pool", "official"] = "pool"
    train_size: int | None = Field(None, ge=1)  # subsample the training split to this size
    label_noise: Rate = 0.0  # fraction of training labels replaced by a different class
    # per_seed: each seed draws its own split of the pool; fixed: one split for every seed
    splits: Literal["per_seed", "fixed"] = "per_seed"
    split_seed: int = Field(0, ge=0)
    normalize: Literal["global", "per_feature", "none"] = "global"

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.test_split == "pool" and self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 (no training data left)")
        if self.dataset in AT_PATH and not self.path:
            raise ValueError(f"dataset {self.dataset!r} needs data.path, {AT_PATH[self.dataset]}")
        if self.dataset in TABLES and not self.label_column:
            raise ValueError(
                f"dataset {self.dataset!r} needs data.label_column, the column that holds "
                "each row's class"
            )
        if self.dataset not in TABLES and self.label_column is not None:
            raise ValueError(
                f"data.label_column is for csv and parquet only, not {self.dataset!r}; "
                "set it to null"
            )
        if self.test_split == "official" and self.dataset not in TORCHVISION:
            raise ValueError(
                f"data.test_split official needs a dataset with an official test set "
                f"({', '.join(TORCHVISION)}), not {self.dataset!r}"
            )
        return self


NETWORK = re.compile(r"mlp|cnn|[\w./-]+\.py:[A-Za-z_]\w*|[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class ModelConfig(Frozen):
    """The network (the `model` section): the built-in multi-layer perceptron (`mlp`) or
    convolutional network (`cnn`), or the user's own, a function named as
    `package.module:function` or `path/to/file.py:function` (`user_network`)."""

    network: str = "mlp"
    # mlp: its hidden layers; cnn: the dense hidden layers after its convolutional blocks
    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(default=[512, 512])
    channels: list[Annotated[int, Field(ge=1)]] = [32, 64]  # cnn: one 3×3 conv block each
    activation: Literal["relu", "gelu", "tanh"] = "relu"

    @field_validator("network")
    @classmethod
    def _known_network(cls, network: str) -> str:
        if not NETWORK.fullmatch(network):
            raise ValueError(
                "network must be mlp, cnn, or your function as package.module:function or "
                "path/to/file.py:function"
            )
        return network

    @field_validator("hidden_sizes")
    @classmethod
    def _mlp_has_hidden_layers(cls, sizes: list[int], info: ValidationInfo) -> list[int]:
        if info.data.get("network") == "mlp" and not sizes:
            raise ValueError("the mlp needs at least one hidden layer")
        return sizes

    @property
    def built_in(self) -> bool:
        return self.network in BUILT_IN

    def hidden_blocks(self) -> int | None:
        """How many hidden blocks the network has (`architecture.hidden_blocks`)."""
        return hidden_blocks(self.network, self.hidden_sizes, self.channels)


class SeedRounds(Frozen):
    """More seeds, in rounds, for the variants whose verdicts are still undecided after
    `train.seeds` (the `rounds` section): `step` more per round for each such variant and for
    the baseline, up to `max` per variant (`analysis.seed_rounds`)."""

    max: int = Field(ge=2)
    step: int = Field(2, ge=1)

    def check_seeds(self, seeds: list[int]) -> None:
        """A ConfigError where the rounds cannot start from `seeds` (`train.seeds`)."""
        if len(seeds) < 2:
            raise ConfigError(
                "rounds need at least 2 train.seeds first (an interval needs two); "
                "or set `rounds: null`"
            )
        if self.max < len(seeds):
            raise ConfigError(
                f"rounds.max ({self.max}) must be at least the number of train.seeds ({len(seeds)})"
            )

    def seed_order(self, seeds: list[int]) -> list[int]:
        """Every seed the study may train: `seeds`, then the ones the rounds add, in order
        (counting up from the largest of `seeds`: a study on seeds of its own, e.g. 100–102,
        adds seeds no study on 0–2 has looked at)."""
        more = itertools.count(max(seeds) + 1)
        return [*seeds, *itertools.islice(more, self.max - len(seeds))]

    def looks(self, seeds: list[int]) -> tuple[int, ...]:
        """How many seeds the verdicts are read at: len(seeds), then each round's step more,
        up to max."""
        return (*range(len(seeds), self.max, self.step), self.max)


LrSchedule = Literal["none", "step", "cosine", "one_cycle"]


class TrainConfig(Frozen):
    """Shared training settings (the `train` section); a variant may override the optimizer,
    nothing else here."""

    epochs: int = Field(40, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    optimizer: Optimizer = "adam"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # SGD only
    # The learning rate's schedule, the same for every variant (docs/training.md), each torch's
    # own scheduler: none keeps `lr` throughout; step multiplies it by lr_gamma every
    # lr_step_size epochs (StepLR); cosine anneals it from lr towards 0 over the epochs
    # (CosineAnnealingLR, T_max = epochs); one_cycle, stepped per mini-batch, rises from lr/25
    # to lr over the first lr_pct_start of the steps, then falls to lr/25e4 (OneCycleLR).
    lr_schedule: LrSchedule = "none"
    lr_step_size: int = Field(10, ge=1)  # step only: epochs between two drops
    lr_gamma: float = Field(0.1, gt=0.0, lt=1.0)  # step only: the factor of each drop
    lr_pct_start: float = Field(0.3, gt=0.0, lt=1.0)  # one_cycle only: the rise's share of steps
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default=[0, 1, 2], min_length=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Training steps under bfloat16 autocast (weights, optimizer, penalty and every evaluation
    # stay float32), and the network compiled with torch.compile: both change the numbers a
    # little, so both are logged with every run. Measured by `make bench`.
    precision: Literal["float32", "bfloat16"] = "float32"
    compile: bool = False
    # A variant's seeds train together (`trainer.train_stack`). On a CPU, `parallel` seeds at
    # once side by side (0: as many as the cores hold at `threads` each), each product on
    # `threads` cores: a seed's numbers depend on `threads` (the products split their sums by
    # thread), not on how many seeds share the machine. On a GPU, `parallel` seeds (0: all)
    # per batched network.
    parallel: int = Field(0, ge=0)
    threads: int = Field(1, ge=1)
    checkpoint_every: int = Field(5, ge=0)  # epochs between checkpoints (for --resume); 0 = off

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return device

    @model_validator(mode="after")
    def _schedule_acts(self) -> TrainConfig:
        if self.lr_schedule == "step" and self.lr_step_size >= self.epochs:
            raise ValueError(
                f"lr_step_size ({self.lr_step_size}) must be below epochs ({self.epochs}): "
                "the step schedule would never lower the learning rate"
            )
        return self

    def lr_schedule_settings(self) -> dict[str, object]:
        """The schedule's settings that act, under their params.yaml names: those of
        `lr_schedule` only (none and cosine have none)."""
        if self.lr_schedule == "step":
            return {"lr_step_size": self.lr_step_size, "lr_gamma": self.lr_gamma}
        if self.lr_schedule == "one_cycle":
            return {"lr_pct_start": self.lr_pct_start}
        return {}


class MlflowConfig(Frozen):
    """Tracking settings (the `mlflow` section)."""

    experiment: str = Field("regularization-study", min_length=1)
    log_model: bool = True


class Equivalence(Frozen):
    """δ per compared measure: the smallest difference from the baseline that matters. A
    difference whose whole interval lies within ±δ is called equivalent (see README)."""

    # Losses in nats: 0.02 is a 2 % change in the mean likelihood the network gives the right
    # class (e^0.02 = 1.02). Accuracy as a fraction: 0.01 is 1 point, 10 images of the default
    # study's 1,000-image test split, about 1.4 x the split's own standard error at 95 %.
    loss_gap_last: float = Field(0.02, gt=0)
    best_val_loss: float = Field(0.02, gt=0)
    train_loss_last: float = Field(0.02, gt=0)
    test_accuracy: float = Field(0.01, gt=0, le=1)


class ReportConfig(Frozen):
    """The gap report (the `report` section)."""

    baseline: str = "baseline"  # the variant every other one is compared with, seed by seed
    # The chance that any verdict on a measure is wrong, for all of that measure's comparisons
    # together (each interval is at 1 - alpha/m for m comparisons).
    alpha: float = Field(0.05, gt=0, lt=0.5)
    equivalence: Equivalence = Equivalence()


# The technique of a joint grid (`sweep.combined`): its strength is one per axis, in order.
COMBINED = "combined"
Strength = float | tuple[float, ...]


def strength_text(strength: Strength) -> str:
    """`0.001`; a point of the joint grid `0.3,1` (a strength per axis, in order)."""
    if isinstance(strength, tuple):
        return ",".join(f"{s:g}" for s in strength)
    return f"{strength:g}"


class _SweepBase(Frozen):
    """Strength paths (the `sweep` section): per technique, the strengths to train, each for
    every seed, on top of the baseline's settings. Strength 0 is the baseline itself. And a
    joint grid, `combined`: techniques (its axes) and their strengths, every combination a
    point, tuned as one technique (an empty list: no points; sweep-stages/dvc.yaml reads each
    technique's list)."""

    combined: dict[str, list[float]] = {}

    @field_validator("*")
    @classmethod
    def _distinct(cls, strengths: list[float] | dict) -> list[float] | dict:
        if isinstance(strengths, list) and len(set(strengths)) != len(strengths):
            raise ValueError("strengths must be distinct")
        return strengths

    @model_validator(mode="after")
    def _joint(self) -> _SweepBase:
        if not self.combined:
            return self
        if len(self.combined) < 2:
            raise ValueError("sweep.combined: a joint grid needs two techniques or more")
        for technique, strengths in self.combined.items():
            if technique not in SWEPT:
                raise ValueError(f"sweep.combined: {technique!r} has no strength axis")
            try:  # each axis as a path of its own would be
                type(self)(**{technique: strengths})
            except ValidationError as e:
                error = e.errors()[0]
                raise ValueError(f"sweep.combined.{technique}: {error['msg']}") from None
        return self

    def variant(self, technique: str, strength: Strength) -> Variant:
        """The variant that trains `technique` at `strength` (validated like params.yaml); for
        the joint grid, each of its techniques at its own strength."""
        if technique == COMBINED and isinstance(strength, tuple):
            axes = list(self.combined)
            if len(strength) != len(axes):
                raise ConfigError(
                    f"a point of sweep.combined has a strength for each of {', '.join(axes)}"
                )
            knobs: dict = {}
            for axis, value in zip(axes, strength, strict=True):
                knobs |= self.variant(axis, value).model_dump(exclude_unset=True)
            return Variant(**knobs)
        if technique not in SWEPT:
            known = ", ".join([*SWEPT, COMBINED])
            raise ConfigError(f"unknown sweep technique {technique!r} (known: {known})")
        try:
            type(self)(**{technique: [strength]})  # the same range as in params.yaml
            return Variant(**SWEPT[technique].settings(strength))
        except ValidationError as e:
            raise ConfigError(
                f"sweep strength {strength!r} for {technique}: {e.errors()[0]['msg']}"
            ) from None

    def points(self) -> list[tuple[str, float]]:
        """Every point of the strength paths (one technique each)."""
        return [(t, s) for t in SWEPT for s in getattr(self, t)]

    def joint_points(self) -> list[tuple[str, tuple[float, ...]]]:
        """Every point of the joint grid: a strength per axis, each combination."""
        if not self.combined:
            return []
        return [(COMBINED, combo) for combo in itertools.product(*self.combined.values())]


Sweep = create_model(
    "Sweep", __base__=_SweepBase, **{k: (list[axis.strength], []) for k, axis in SWEPT.items()}
)


class Params(Frozen):
    """The whole of `params.yaml`."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    variants: dict[str, Variant] = Field(min_length=1)
    mlflow: MlflowConfig = MlflowConfig()
    report: ReportConfig = ReportConfig()
    rounds: SeedRounds | None = None
    sweep: Sweep = Sweep()

    @model_validator(mode="after")
    def _check(self) -> Params:
        for name, variant in self.variants.items():
            if not VARIANT_NAME.fullmatch(name):
                raise ValueError(
                    f"variant name {name!r} must start with a letter and hold only letters, "
                    "digits, '_' and '-'"
                )
            blocks = self.model.hidden_blocks()
            if isinstance(variant.dropout, list) and blocks not in (None, len(variant.dropout)):
                raise ValueError(
                    f"variants.{name}.dropout has {len(variant.dropout)} rates but the "
                    f"{self.model.network} has {blocks} hidden blocks"
                )
        if self.report.baseline not in self.variants:
            raise ValueError(f"report.baseline {self.report.baseline!r} is not one of the variants")
        return self

    def check_rounds(self) -> None:
        """A ConfigError where `rounds` cannot be planned on `train.seeds`. Checked by what
        runs the study (its train stages, the rounds, `study`) before anything trains, not when
        params.yaml is read: one run with overrides (`train --seed 5`) plans no rounds."""
        if self.rounds is not None:
            self.rounds.check_seeds(self.train.seeds)

    def variant(self, name: str) -> Variant:
        """The variant called `name`, or a ConfigError that lists the known ones."""
        if name not in self.variants:
            known = ", ".join(self.variants)
            raise ConfigError(f"unknown variant {name!r} (params.yaml defines: {known})")
        return self.variants[name]
