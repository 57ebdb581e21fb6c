"""The registry of regularization techniques: each one declared once, here.

A technique is a knob of a variant (`variants.<name>.<knob>` in params.yaml). Its entry says
what values it takes, which value switches it off, where in training it acts, how MLflow logs
it, how the report names it, and, where it has a strength to sweep, the axis of its strength
path (`sweep.<knob>`); its type and off value are its field of `variant.Variant`. Everything
else is derived from this list: the command-line overrides (`train --KNOB`, `mlflow run -P
KNOB=`), the sweep's techniques and axes, and the report's labels. The arithmetic of each lives
in `regularization` (dropout in `model`).

Adding a technique: its field in `Variant`, one entry here, its arithmetic in `regularization`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .variant import Positive, Rate, Variant


class Resolved(Protocol):
    """A variant resolved against the shared settings (a `spec.RunSpec`)."""

    @property
    def variant(self) -> Variant: ...
    @property
    def optimizer(self) -> str: ...
    @property
    def dropout_rates(self) -> tuple[float, ...]: ...


@dataclass(frozen=True)
class SweepAxis:
    """How a technique's strength path is drawn and how one strength becomes a variant."""

    strength: Any  # the type of one strength in `sweep.<knob>`
    scale: Literal["linear", "log"]
    settings: Callable[[float], dict[str, Any]]  # the variant's knobs at that strength


@dataclass(frozen=True)
class Technique:
    knob: str  # a field of `Variant`: its type says what it accepts, its default is off
    values: str  # the accepted values in words, for `python -m pipeline techniques`
    acts_on: Literal["data", "network", "objective", "optimizer", "step", "stopping"]  # ACTS_ON
    summary: str
    label: Callable[[Resolved], str | None]  # the report's words when it is on, else None
    logged: Callable[[Resolved], dict[str, Any]]  # its params in every MLflow run
    # What it needs of the network or the data to act on (see NEEDS); checked before training.
    needs: Literal["weights", "dropout", "images"] | None = None
    sweep: SweepAxis | None = None

    @property
    def off(self) -> Any:
        """The value that switches it off: the field's default."""
        return Variant.model_fields[self.knob].default


# What a technique needs to act on, in words: a network or data without it refuses the technique.
NEEDS = {
    "weights": "linear or convolutional layers",  # their weights (biases: penalize_bias)
    "dropout": "nn.Dropout modules in the network",  # built-in: after the input, each block
    "images": "image data (C, H, W), normalised as a whole (data.normalize global or none)",
}

# Where in training each kind of technique acts, in words.
ACTS_ON = {
    "data": "the training mini-batches (image data)",
    "network": "the network",
    "objective": "the training objective",
    "optimizer": "the optimizer",
    "step": "the weights after each step",
    "stopping": "when training stops",
}


def _value(knob: str, when_off: Any = None) -> Callable[[Resolved], dict[str, Any]]:
    """Log the knob under its own name (`when_off` in place of None: MLflow compares numbers)."""

    def logged(r: Resolved) -> dict[str, Any]:
        value = getattr(r.variant, knob)
        return {knob: when_off if value is None and when_off is not None else value}

    return logged


def _dropout_label(r: Resolved) -> str | None:
    # Hidden and input dropout are named together: "dropout 0.5/0.5, input 0.2".
    v = r.variant
    if not (any(p > 0 for p in r.dropout_rates) or v.input_dropout > 0):
        return None
    rates = "/".join(f"{p:g}" for p in r.dropout_rates)
    return f"dropout {rates}" + (f", input {v.input_dropout:g}" if v.input_dropout else "")


def _dropout_logged(r: Resolved) -> dict[str, Any]:
    # Numbers, so that MLflow charts them: one rate for every hidden block as `dropout`,
    # different rates as `dropout_1`, `dropout_2`, ... one per block.
    rates = r.dropout_rates
    if len(set(rates)) <= 1:
        return {"dropout": rates[0] if rates else 0.0}
    return {f"dropout_{k}": p for k, p in enumerate(rates, start=1)}


def weight_decay_kind(optimizer: str, weight_decay: float) -> str:
    """How weight decay acts: coupled to the gradient (sgd, adam) or decoupled (adamw)."""
    if weight_decay == 0:
        return "none"
    return "decoupled" if optimizer == "adamw" else "coupled"


def _decay_label(r: Resolved) -> str | None:
    wd = r.variant.weight_decay
    if wd <= 0:
        return None
    return f"{weight_decay_kind(r.optimizer, wd)} weight decay {wd:g} ({r.optimizer})"


def _when_on(text: Callable[[Any], str], knob: str) -> Callable[[Resolved], str | None]:
    def label(r: Resolved) -> str | None:
        value = getattr(r.variant, knob)
        return text(value) if value not in (None, 0, 0.0) else None

    return label


TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        knob="dropout",
        values="[0, 1), or one rate per hidden block",
        acts_on="network",
        summary="inverted dropout after each hidden block",
        label=_dropout_label,
        logged=_dropout_logged,
        needs="dropout",
        sweep=SweepAxis(Rate, "linear", lambda s: {"dropout": s}),
    ),
    Technique(
        knob="input_dropout",
        values="[0, 1)",
        acts_on="network",
        summary="inverted dropout on the inputs",
        label=lambda r: None,  # named with dropout
        logged=_value("input_dropout"),
        needs="dropout",
        sweep=SweepAxis(Rate, "linear", lambda s: {"input_dropout": s}),
    ),
    Technique(
        knob="l1",
        values="λ1 ≥ 0",
        acts_on="objective",
        summary="λ1·Σ|w| added to the loss",
        label=_when_on(lambda x: f"L1 λ1={x:g}", "l1"),
        logged=_value("l1"),
        needs="weights",
        sweep=SweepAxis(Positive, "log", lambda s: {"l1": s}),
    ),
    Technique(
        knob="l2",
        values="λ2 ≥ 0",
        acts_on="objective",
        summary="λ2·Σw² added to the loss",
        label=_when_on(lambda x: f"L2 λ2={x:g}", "l2"),
        logged=_value("l2"),
        needs="weights",
        sweep=SweepAxis(Positive, "log", lambda s: {"l2": s}),
    ),
    Technique(
        knob="weight_decay",
        values="≥ 0",
        acts_on="optimizer",
        summary="the optimizer's decay: coupled for sgd/adam, decoupled for adamw",
        label=_decay_label,
        logged=lambda r: {
            "weight_decay": r.variant.weight_decay,
            "weight_decay_kind": weight_decay_kind(r.optimizer, r.variant.weight_decay),
        },
        needs="weights",
        sweep=SweepAxis(Positive, "log", lambda s: {"optimizer": "adamw", "weight_decay": s}),
    ),
    Technique(
        knob="max_norm",
        values="> 0, or null for off",
        acts_on="step",
        summary="cap on each unit's incoming weight norm, after each step",
        label=_when_on(lambda x: f"max-norm {x:g}", "max_norm"),
        logged=_value("max_norm", when_off=0.0),
        needs="weights",
    ),
    Technique(
        knob="patience",
        values="epochs ≥ 1, or null for off",
        acts_on="stopping",
        summary="early stopping on val loss, keeping the best epoch's weights",
        label=_when_on(lambda p: f"early stopping, patience {p}", "patience"),
        logged=_value("patience", when_off=0),
    ),
    Technique(
        knob="label_smoothing",
        values="ε in [0, 1)",
        acts_on="objective",
        summary="cross-entropy against targets with ε spread evenly over the classes",
        label=_when_on(lambda x: f"label smoothing {x:g}", "label_smoothing"),
        logged=_value("label_smoothing"),
        sweep=SweepAxis(Rate, "linear", lambda s: {"label_smoothing": s}),
    ),
    Technique(
        knob="crop",
        values="padding in pixels ≥ 0",
        acts_on="data",
        summary="random crop of each training image padded by this many pixels (augmentation)",
        label=_when_on(lambda p: f"random crop (padding {p})", "crop"),
        logged=_value("crop"),
        needs="images",
    ),
    Technique(
        knob="flip",
        values="true | false",
        acts_on="data",
        summary="horizontal flip of each training image with probability ½ (augmentation)",
        label=lambda r: "horizontal flip" if r.variant.flip else None,
        logged=_value("flip"),
        needs="images",
    ),
)

SWEPT = {t.knob: t.sweep for t in TECHNIQUES if t.sweep is not None}


def label(r: Resolved) -> str:
    """What a variant switches on, in the report's words: `L2 λ2=0.001; max-norm 3`."""
    parts = [text for t in TECHNIQUES if (text := t.label(r)) is not None]
    v = r.variant
    if v.penalize_bias and (v.l1 > 0 or v.l2 > 0 or v.weight_decay > 0):
        parts.append("biases penalised")
    return "; ".join(parts) or "none"


def logged(r: Resolved) -> dict[str, Any]:
    """Every technique's params, under the same names in every run."""
    out: dict[str, Any] = {}
    for t in TECHNIQUES:
        out |= t.logged(r)
    out["penalize_bias"] = r.variant.penalize_bias
    return out


def listing() -> list[str]:
    """Every knob of a variant in words: its values, where it acts, its strength path."""
    lines = []
    for t in TECHNIQUES:
        path = f"sweep: {t.sweep.scale} axis" if t.sweep else "no strength path"
        lines += [f"{t.knob:<16} {t.values:<38} acts on {ACTS_ON[t.acts_on]}; {path}"]
        lines += [f"{'':<16} {t.summary}"]
        if t.needs:
            lines += [f"{'':<16} needs {NEEDS[t.needs]}"]
    lines += [
        f"{'penalize_bias':<16} {'true | false':<38} penalties and decay touch biases and "
        "normalisation parameters too"
    ]
    return lines + [f"{'optimizer':<16} {'sgd | adam | adamw':<38} overrides train.optimizer"]
