"""One run of the study: a variant's settings resolved against the shared ones, for one seed."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig, Params, TrainConfig, Variant
from .regularization import weight_decay_kind


@dataclass(frozen=True)
class RunSpec:
    """Everything `train` needs besides the data. Independent of every other run."""

    variant_name: str
    variant: Variant
    model: ModelConfig
    train: TrainConfig
    seed: int

    @property
    def optimizer(self) -> str:
        return self.variant.optimizer or self.train.optimizer

    @property
    def dropout_rates(self) -> tuple[float, ...]:
        rates = self.variant.dropout
        if isinstance(rates, list):
            return tuple(rates)
        return (rates,) * len(self.model.hidden_sizes)

    @property
    def run_name(self) -> str:
        return f"{self.variant_name}-seed{self.seed}"

    def hyperparameters(self) -> dict[str, object]:
        """Every resolved hyperparameter, under the same names in every run."""
        v = self.variant
        return {
            "variant": self.variant_name,
            "seed": self.seed,
            "hidden_sizes": list(self.model.hidden_sizes),
            "activation": self.model.activation,
            "epochs": self.train.epochs,
            "batch_size": self.train.batch_size,
            "lr": self.train.lr,
            "optimizer": self.optimizer,
            "momentum": self.train.momentum if self.optimizer == "sgd" else 0.0,
            "precision": self.train.precision,
            "compile": self.train.compile,
            "dropout": list(self.dropout_rates),
            "input_dropout": v.input_dropout,
            "l1": v.l1,
            "l2": v.l2,
            "penalize_bias": v.penalize_bias,
            "weight_decay": v.weight_decay,
            "weight_decay_kind": weight_decay_kind(self.optimizer, v.weight_decay),
            "max_norm": v.max_norm if v.max_norm is not None else 0.0,
            "patience": v.patience if v.patience is not None else 0,
        }


def run_specs(params: Params, variant_name: str, seeds: list[int] | None = None) -> list[RunSpec]:
    """The runs of one variant: one per seed in `params.yaml` (or the seeds given)."""
    variant = params.variant(variant_name)
    return [
        RunSpec(variant_name, variant, params.model, params.train, seed)
        for seed in (seeds if seeds is not None else params.train.seeds)
    ]


def study_specs(params: Params) -> list[RunSpec]:
    """The study's run grid: every variant of params.yaml × every seed."""
    return [spec for name in params.variants for spec in run_specs(params, name)]


def sweep_spec(params: Params, technique: str, strength: float, seed: int) -> RunSpec:
    """One point of a strength path: the baseline variant with one technique at `strength`."""
    base = params.variant(params.report.baseline)
    change = params.sweep.variant(technique, strength).model_dump(exclude_unset=True)
    variant = base.model_copy(update=change)
    return RunSpec(sweep_name(technique, strength), variant, params.model, params.train, seed)


def sweep_name(technique: str, strength: float) -> str:
    """`l2=0.001`: the name a sweep point's runs carry (in MLflow and in the report)."""
    return f"{technique}={strength:g}"
