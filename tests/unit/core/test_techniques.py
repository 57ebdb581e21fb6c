"""The registry of techniques: every knob is declared once and everything else is derived from
it; label smoothing, added through the registry alone, against hand computations."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
import yaml
from pydantic import ValidationError

from pipeline.cli.sweep_stages import sweep_dvc_yaml
from pipeline.core.config import ModelConfig, Params, Sweep, TrainConfig
from pipeline.core.errors import ConfigError
from pipeline.core.loading import OVERRIDABLE, load_params, parse_params, with_overrides
from pipeline.core.spec import RunSpec, sweep_spec
from pipeline.core.techniques import SWEPT, TECHNIQUES
from pipeline.core.variant import Variant
from pipeline.training.device import DeviceData
from pipeline.training.regularization import training_objective
from tests.support.repo import REPO
from tests.support.training import problem, train

BASE = {"variants": {"baseline": {}, "v": {}}, "model": {"hidden_sizes": [8, 8]}}


def resolved(**knobs: object) -> RunSpec:
    return RunSpec("v", Variant(**knobs), ModelConfig(hidden_sizes=[8, 8]), TrainConfig(), 0)


@pytest.mark.parametrize("technique", TECHNIQUES, ids=lambda t: t.knob)
def test_each_technique_is_a_variant_knob_an_override_and_a_logged_param(technique) -> None:
    assert Variant.model_fields[technique.knob].default == technique.off
    assert technique.knob in OVERRIDABLE
    logged = resolved().hyperparameters()
    assert set(technique.logged(resolved())) <= set(logged)
    assert technique.label(resolved()) is None, "off by default, so not named"


@pytest.mark.parametrize("knob", list(SWEPT))
def test_each_technique_with_a_strength_path_is_a_sweep_key_and_a_dvc_stage(knob: str) -> None:
    assert Sweep.model_fields[knob].default == []
    assert f"  sweep-{knob}:\n" in sweep_dvc_yaml()
    assert f"${{sweep.{knob}}}" in sweep_dvc_yaml()


def test_sweep_dvc_yaml_is_the_one_the_registry_writes() -> None:
    """sweep-stages/dvc.yaml is written from the registry (`python -m pipeline sweep-stages`), and
    DVC reads every technique's list from params.yaml, so each must be there, and the joint
    grid's stage is over the techniques of params.yaml's `sweep.combined`."""
    sweep = load_params(REPO / "params.yaml").sweep
    assert (REPO / "sweep-stages" / "dvc.yaml").read_text() == sweep_dvc_yaml(list(sweep.combined))
    assert set(sweep.model_fields_set) == {*SWEPT, "combined"}


def test_a_joint_grid_is_checked_like_the_paths_and_names_its_points() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["sweep"]["combined"] = {"dropout": [0.3, 0.5], "l2": [1e-4]}
    sweep = parse_params(raw).sweep
    assert sweep.joint_points() == [("combined", (0.3, 1e-4)), ("combined", (0.5, 1e-4))]
    knobs = sweep.variant("combined", (0.5, 1e-4)).model_dump(exclude_defaults=True)
    assert knobs == {"dropout": 0.5, "l2": 1e-4}
    for combined, expected in (
        ({"dropout": [0.3]}, "a joint grid needs two techniques or more"),
        ({"dropout": [1.3], "l2": [1e-4]}, "sweep.combined.dropout: Input should be less than 1"),
        ({"dropout": [0.3], "shrinkage": [1.0]}, "'shrinkage' has no strength axis"),
        ({"dropout": [0.3, 0.3], "l2": [1e-4]}, "strengths must be distinct"),
    ):
        raw["sweep"]["combined"] = combined
        with pytest.raises(ConfigError, match=re.escape(expected)):
            parse_params(raw)
    # The joint grid's stage: a DVC matrix over its techniques, each point named by them.
    stages = yaml.safe_load(sweep_dvc_yaml(["dropout", "l2"]))["stages"]
    joint = stages["sweep-combined"]
    assert joint["matrix"] == {"dropout": "${sweep.combined.dropout}", "l2": "${sweep.combined.l2}"}
    point = "dropout=${item.dropout},l2=${item.l2}"
    assert joint["cmd"].startswith(f"python -m pipeline sweep-run combined {point} ")
    assert joint["outs"] == [f"sweeps/combined/{point}"]
    assert "sweep-combined" not in yaml.safe_load(sweep_dvc_yaml())["stages"]


def test_labels_say_what_a_variant_switches_on() -> None:
    assert resolved().label == "none"
    assert resolved(dropout=0.5, input_dropout=0.2).label == "dropout 0.5/0.5, input 0.2"
    assert resolved(dropout=[0.1, 0.0]).label == "dropout 0.1/0"
    both = resolved(l1=3e-5, l2=1e-3, penalize_bias=True)
    assert both.label == "L1 λ1=3e-05; L2 λ2=0.001; biases penalised"
    decay = resolved(weight_decay=1.0, optimizer="adamw", patience=5, max_norm=3.0)
    assert decay.label == (
        "decoupled weight decay 1 (adamw); max-norm 3; early stopping, patience 5"
    )
    assert resolved(label_smoothing=0.1).label == "label smoothing 0.1"
    assert resolved(penalize_bias=True).label == "none"  # nothing to put on the biases


# --- label smoothing -------------------------------------------------------------------------


def test_label_smoothing_objective_matches_a_hand_computation() -> None:
    """Targets put 1 − ε + ε/C on the true class and ε/C on each other; the data loss stays the
    plain cross-entropy, and with ε = 0 the objective is the data loss itself."""
    torch.manual_seed(0)
    logits, target = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    eps, classes = 0.2, 3
    logp = torch.log_softmax(logits, dim=1)
    smoothed = torch.full((5, classes), eps / classes)
    smoothed[torch.arange(5), target] += 1 - eps
    expected = float(-(smoothed * logp).sum(dim=1).mean())
    plain = float(-logp[torch.arange(5), target].mean())

    objective, data_loss = training_objective(logits, target, Variant(label_smoothing=eps), [])
    assert float(objective) == pytest.approx(expected, rel=1e-6)
    assert float(data_loss) == pytest.approx(plain, rel=1e-6)
    objective, data_loss = training_objective(logits, target, Variant(), [])
    assert torch.equal(objective, data_loss) and torch.equal(
        data_loss, F.cross_entropy(logits, target)
    )


def test_label_smoothing_holds_the_train_data_loss_at_its_floor() -> None:
    """On data it can separate, a network trained plainly drives the train data loss to ~0.
    Under label smoothing the objective is lowest where each example's true class gets
    probability 1 − ε + ε/C, so the (plain) data loss settles near −ln(1 − ε + ε/C) instead,
    with every training example still classified correctly."""
    data = DeviceData.of(problem(), torch.device("cpu"))
    settings = TrainConfig(epochs=40, batch_size=32, lr=0.01, seeds=[0], device="cpu")
    model = ModelConfig(hidden_sizes=[16])
    eps, classes = 0.3, 3
    plain = train(RunSpec("v", Variant(), model, settings, 0), data).history[-1]
    smooth = train(RunSpec("v", Variant(label_smoothing=eps), model, settings, 0), data)
    floor = -math.log(1 - eps + eps / classes)
    last = smooth.history[-1]
    assert plain["train_loss"] < 0.05 and plain["train_accuracy"] == 1.0
    assert last["train_loss"] == pytest.approx(floor, abs=0.05)
    assert last["train_accuracy"] == 1.0
    # What was logged is the plain data loss: recomputed from the kept weights.
    smooth.model.eval()
    with torch.no_grad():
        best = smooth.history[int(smooth.summary["best_epoch"]) - 1]
        ce = float(F.cross_entropy(smooth.model(data.train.x), data.train.y))
    assert ce == pytest.approx(best["train_loss"], rel=1e-5)


@pytest.mark.parametrize("value", [1.0, -0.1, "0.1"])
def test_label_smoothing_out_of_range_is_refused_naming_the_key(value: object) -> None:
    raw = {**BASE, "variants": {"baseline": {}, "v": {"label_smoothing": value}}}
    with pytest.raises(ConfigError, match=r"^params\.yaml: variants\.v\.label_smoothing"):
        parse_params(raw)
    with pytest.raises(ValidationError):
        Variant(label_smoothing=value)


def test_label_smoothing_as_an_override_and_a_strength_path() -> None:
    params = parse_params(BASE)
    changed = with_overrides(params, "v", {"label_smoothing": "0.1"})
    assert changed.variants["v"].label_smoothing == 0.1
    assert changed.variants["baseline"].label_smoothing == 0.0
    with pytest.raises(ConfigError, match="override: variants.v.label_smoothing"):
        with_overrides(params, "v", {"label_smoothing": "1.5"})
    point = sweep_spec(params, "label_smoothing", 0.2, seed=1)
    assert point.variant.label_smoothing == 0.2 and point.run_name == "label_smoothing=0.2-seed1"
    assert point.hyperparameters()["label_smoothing"] == 0.2
    with pytest.raises(ConfigError, match="sweep strength 1.0 for label_smoothing"):
        params.sweep.variant("label_smoothing", 1.0)
    assert isinstance(params, Params)


def test_a_variants_fields_are_the_registrys_knobs_and_three_modifiers() -> None:
    """A technique added to `Variant` but not the registry (or the other way) fails here."""
    knobs = {t.knob for t in TECHNIQUES}
    assert set(Variant.model_fields) == knobs | {"penalize_bias", "optimizer"}
