"""The study's configuration: `params.yaml` parsed once into typed, frozen models.

Every model forbids unknown keys, rejects NaN and infinity, and checks ranges, so a typo or a
bad value stops the program with one line that names the key before anything is trained or
tracked. Code below this module receives these objects, never dicts of strings.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

Dataset = Literal["mnist-5k", "digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "npz"]
Optimizer = Literal["sgd", "adam", "adamw"]

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]  # a dropout or noise probability
Strength = Annotated[float, Field(ge=0.0)]  # a penalty or decay coefficient
VARIANT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Labels pydantic adds to an error's location for the members of a union: not keys.
_UNION_MEMBER = re.compile(r"(constrained-)?(float|int|str|bool)|list\[.*\]|function-.*")


class _Frozen(BaseModel):
    # strict: a string is never silently turned into a number or a bool.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataConfig(_Frozen):
    """Where the data comes from and how it is split (the `data` section)."""

    dataset: Dataset = "mnist-5k"
    root: str = "data/raw"  # torchvision datasets are read from / downloaded into this folder
    path: str | None = None  # the .npz file when dataset is "npz"
    download: bool = True  # allow torchvision to download when the files are not in root
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    train_size: int | None = Field(None, ge=1)  # subsample the training split to this size
    label_noise: Rate = 0.0  # fraction of training labels replaced by a different class
    split_seed: int = Field(0, ge=0)
    normalize: Literal["global", "per_feature", "none"] = "global"

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 (no training data left)")
        if self.dataset == "npz" and not self.path:
            raise ValueError("dataset 'npz' needs data.path, the .npz file with arrays x and y")
        return self


class ModelConfig(_Frozen):
    """The network: a multi-layer perceptron over flattened inputs (the `model` section)."""

    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(default=[512, 512], min_length=1)
    activation: Literal["relu", "gelu", "tanh"] = "relu"


class TrainConfig(_Frozen):
    """Shared training settings (the `train` section); a variant may override the optimizer."""

    epochs: int = Field(40, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    optimizer: Optimizer = "adam"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # SGD only
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default=[0, 1, 2], min_length=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Training steps under bfloat16 autocast (weights, optimizer, penalty and every evaluation
    # stay float32), and the network compiled with torch.compile: both change the numbers a
    # little, so both are logged with every run. Measured by `make bench`.
    precision: Literal["float32", "bfloat16"] = "float32"
    compile: bool = False
    # On a CPU, seeds train side by side in separate processes: `parallel` at once (0: all
    # seeds), each with `threads` torch threads (0: the cores shared out among them).
    parallel: int = Field(0, ge=0)
    threads: int = Field(0, ge=0)
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


class Variant(_Frozen):
    """One named set of regularization settings. Everything left out is off.

    Penalty in the loss:  λ1·Σ|w| + λ2·Σw²  over the weights of the linear layers
    (biases too when `penalize_bias`). `weight_decay` is the optimizer's own decay, a different
    thing: coupled to the gradient for sgd/adam, decoupled for adamw (Loshchilov & Hutter).
    """

    description: str = ""
    dropout: Rate | list[Rate] = 0.0  # after each hidden layer; a list gives one rate per layer
    input_dropout: Rate = 0.0
    l1: Strength = 0.0
    l2: Strength = 0.0
    penalize_bias: bool = False
    weight_decay: Strength = 0.0
    optimizer: Optimizer | None = None  # None: train.optimizer
    max_norm: float | None = Field(None, gt=0.0)  # cap on each unit's incoming weight norm
    patience: int | None = Field(None, ge=1)  # early stopping on val loss; None: off


class MlflowConfig(_Frozen):
    """Tracking settings (the `mlflow` section)."""

    experiment: str = Field("regularization-study", min_length=1)
    log_model: bool = True


class ReportConfig(_Frozen):
    """The gap report (the `report` section)."""

    baseline: str = "baseline"  # the variant every other one is compared with, seed by seed


# How a strength of the sweep becomes a variant; the λ-like ones are drawn on a log axis.
SWEEP_TECHNIQUES = {
    "dropout": lambda s: {"dropout": s},
    "input_dropout": lambda s: {"input_dropout": s},
    "l1": lambda s: {"l1": s},
    "l2": lambda s: {"l2": s},
    "weight_decay": lambda s: {"optimizer": "adamw", "weight_decay": s},
}
LOG_SCALE_TECHNIQUES = ("l1", "l2", "weight_decay")


class Sweep(_Frozen):
    """Strength paths (the `sweep` section): per technique, the strengths to train, each for
    every seed, on top of the baseline's settings. Strength 0 is the baseline itself."""

    dropout: list[Rate] = []
    input_dropout: list[Rate] = []
    l1: list[Annotated[float, Field(gt=0.0)]] = []
    l2: list[Annotated[float, Field(gt=0.0)]] = []
    weight_decay: list[Annotated[float, Field(gt=0.0)]] = []

    @field_validator("*")
    @classmethod
    def _distinct(cls, strengths: list[float]) -> list[float]:
        if len(set(strengths)) != len(strengths):
            raise ValueError("strengths must be distinct")
        return strengths

    def variant(self, technique: str, strength: float) -> Variant:
        """The variant that trains `technique` at `strength` (validated like params.yaml)."""
        if technique not in SWEEP_TECHNIQUES:
            known = ", ".join(SWEEP_TECHNIQUES)
            raise ConfigError(f"unknown sweep technique {technique!r} (known: {known})")
        try:
            Sweep(**{technique: [strength]})  # the same range as in params.yaml
            return Variant(**SWEEP_TECHNIQUES[technique](strength))
        except ValidationError as e:
            raise ConfigError(
                f"sweep strength {strength!r} for {technique}: {e.errors()[0]['msg']}"
            ) from None

    def points(self) -> list[tuple[str, float]]:
        return [(t, s) for t in SWEEP_TECHNIQUES for s in getattr(self, t)]


class Params(_Frozen):
    """The whole of `params.yaml`."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    variants: dict[str, Variant] = Field(min_length=1)
    mlflow: MlflowConfig = MlflowConfig()
    report: ReportConfig = ReportConfig()
    sweep: Sweep = Sweep()

    @model_validator(mode="after")
    def _check(self) -> Params:
        for name, variant in self.variants.items():
            if not VARIANT_NAME.fullmatch(name):
                raise ValueError(
                    f"variant name {name!r} must start with a letter and hold only letters, "
                    "digits, '_' and '-'"
                )
            if isinstance(variant.dropout, list) and len(variant.dropout) != len(
                self.model.hidden_sizes
            ):
                raise ValueError(
                    f"variants.{name}.dropout has {len(variant.dropout)} rates but the model has "
                    f"{len(self.model.hidden_sizes)} hidden layers"
                )
        if self.report.baseline not in self.variants:
            raise ValueError(f"report.baseline {self.report.baseline!r} is not one of the variants")
        return self

    def variant(self, name: str) -> Variant:
        """The variant called `name`, or a ConfigError that lists the known ones."""
        if name not in self.variants:
            known = ", ".join(self.variants)
            raise ConfigError(f"unknown variant {name!r} (params.yaml defines: {known})")
        return self.variants[name]


# --- loading ---------------------------------------------------------------------------------


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e-4` is a string; people (and DVC) mean a float."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, with YAML 1.2 floats; a syntax error becomes a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_Yaml12Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One line naming the first offending key, what is wrong and the value given."""
    first = error.errors()[0]
    parts = [str(p) for p in first["loc"] if not _UNION_MEMBER.fullmatch(str(p))]
    key = ".".join(parts) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}"
    if first["type"] == "missing":
        return f"{source}: {key}: required but missing"
    value = first.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    if isinstance(value, float) and not math.isfinite(value):
        message = "must be a finite number"
    return f"{source}: {key}: {message}{shown}"


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed mapping into Params, or raise a one-line ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, source)) from None


def load_params(path: Path) -> Params:
    """Read and validate `params.yaml`."""
    return parse_params(read_yaml(path), source=path.name)


# --- overrides (`train --KEY VALUE`, `mlflow run -P KEY=VALUE`) -------------------------------

VARIANT_KNOBS = (
    "dropout", "input_dropout", "l1", "l2", "penalize_bias", "weight_decay", "optimizer",
    "max_norm", "patience",
)  # fmt: skip
TRAIN_KNOBS = (
    "lr", "epochs", "batch_size", "momentum", "device", "precision", "compile", "parallel",
    "threads",
)  # fmt: skip
OVERRIDABLE = (*VARIANT_KNOBS, *TRAIN_KNOBS, "seed")


def parse_value(text: str) -> Any:
    """A command-line value read as YAML 1.2: `0.5`, `1e-4`, `[0.2, 0.5]`, `true`, `adamw`."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError:
        return text


def with_overrides(params: Params, variant: str, overrides: dict[str, str]) -> Params:
    """`params` with knobs of `variant` (and shared training knobs) replaced, re-validated.

    Variant knobs change only that variant; `seed` trains that one seed. `params.yaml` itself
    is never edited.
    """
    params.variant(variant)
    raw = params.model_dump()
    for key, text in overrides.items():
        value = parse_value(text)
        if key in VARIANT_KNOBS:
            raw["variants"][variant][key] = value
        elif key in TRAIN_KNOBS:
            raw["train"][key] = value
        elif key == "seed":
            raw["train"]["seeds"] = [value]
        else:
            raise ConfigError(f"unknown override {key!r} (known: {', '.join(OVERRIDABLE)})")
    return parse_params(raw, source="override")
