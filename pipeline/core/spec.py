"""One run of the study: a variant's settings resolved against the shared ones, for one seed;
and the lists of runs a study, a variant or a strength path is made of."""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import techniques
from .architecture import Architecture
from .config import ModelConfig, Params, Strength, TrainConfig, strength_text
from .records import run_name
from .variant import Variant


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs besides the data. Independent of every other run."""

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
        """One rate per hidden block of a built-in network; for the user's network, the
        variant's rate or rates as written."""
        rates = self.variant.dropout
        if isinstance(rates, list):
            return tuple(rates)
        return (rates,) * (self.model.hidden_blocks() or 1)

    @property
    def run_name(self) -> str:
        return run_name(self.variant_name, self.seed)

    @property
    def label(self) -> str:
        """What the variant switches on, in the report's words."""
        return techniques.label(self)

    def architecture(self, input_shape: tuple[int, ...], n_classes: int) -> Architecture:
        """The network of this run for inputs of `input_shape` (one example's shape)."""
        m = self.model
        return Architecture(
            n_inputs=math.prod(input_shape),
            hidden_sizes=tuple(m.hidden_sizes) if m.built_in else (),
            n_classes=n_classes,
            activation=m.activation if m.built_in else "",
            dropout=self.dropout_rates,
            input_dropout=self.variant.input_dropout,
            network=m.network,
            input_shape=tuple(input_shape),
            channels=tuple(m.channels) if m.network == "cnn" else (),
        )

    def network(self) -> dict[str, object]:
        """The network's settings under their params.yaml names: those it uses only."""
        m = self.model
        if m.network == "mlp":
            return {
                "network": "mlp",
                "hidden_sizes": list(m.hidden_sizes),
                "activation": m.activation,
            }
        if m.network == "cnn":
            return {
                "network": "cnn",
                "channels": list(m.channels),
                "hidden_sizes": list(m.hidden_sizes),
                "activation": m.activation,
            }
        return {"network": m.network}

    def hyperparameters(self) -> dict[str, object]:
        """Every resolved hyperparameter, under the same names in every run."""
        return {
            "variant": self.variant_name,
            "seed": self.seed,
            **self.network(),
            "epochs": self.train.epochs,
            "batch_size": self.train.batch_size,
            "lr": self.train.lr,
            "lr_schedule": self.train.lr_schedule,
            **self.train.lr_schedule_settings(),
            "optimizer": self.optimizer,
            "momentum": self.train.momentum if self.optimizer == "sgd" else 0.0,
            "precision": self.train.precision,
            "compile": self.train.compile,
            **techniques.logged(self),
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


def sweep_spec(params: Params, technique: str, strength: Strength, seed: int) -> RunSpec:
    """One point of a strength path: the baseline variant with one technique at `strength`
    (of the joint grid: each of its techniques at its own)."""
    base = params.variant(params.report.baseline)
    change = params.sweep.variant(technique, strength).model_dump(exclude_unset=True)
    variant = base.model_copy(update=change)
    return RunSpec(sweep_name(technique, strength), variant, params.model, params.train, seed)


def sweep_name(technique: str, strength: Strength) -> str:
    """`l2=0.001`: the name a sweep point's runs carry (in MLflow and in the report)."""
    return f"{technique}={strength_text(strength)}"
