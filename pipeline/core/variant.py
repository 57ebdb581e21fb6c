"""A variant: one named set of regularization settings (`variants.<name>` in params.yaml),
typed field by field; and `Frozen`, the base of every model of the configuration.

Each field but `penalize_bias` and `optimizer` is a technique of the registry
(`techniques.TECHNIQUES`): its type is what the knob accepts and its default switches it off;
the registry says where it acts, how it is logged and how the report names it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]  # a probability: dropout, noise, smoothing
Strength = Annotated[float, Field(ge=0.0)]  # a penalty or decay coefficient
Positive = Annotated[float, Field(gt=0.0)]
Optimizer = Literal["sgd", "adam", "adamw"]


class Frozen(BaseModel):
    """Unknown keys, NaN and infinity refused; strict: a string is never silently turned into a
    number or a bool; frozen once made."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Variant(Frozen):
    """One named set of regularization settings; everything left out is off. What it tests
    is a YAML comment beside its name, not a field: a train stage depends on every field."""

    dropout: Rate | list[Rate] = 0.0  # one rate, or one per hidden block
    input_dropout: Rate = 0.0
    l1: Strength = 0.0
    l2: Strength = 0.0
    weight_decay: Strength = 0.0  # the optimizer's: coupled for sgd/adam, decoupled for adamw
    max_norm: Positive | None = None
    patience: Annotated[int, Field(ge=1)] | None = None  # early stopping
    label_smoothing: Rate = 0.0
    crop: Annotated[int, Field(ge=0)] = 0
    flip: bool = False
    penalize_bias: bool = False  # penalties and decay touch biases (and norm layers) too
    optimizer: Optimizer | None = None  # None: train.optimizer
