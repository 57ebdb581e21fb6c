"""params.yaml validation: every bad edit stops with one line that names the key."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pipeline.core.config import DataConfig, Params, TrainConfig
from pipeline.core.errors import ConfigError
from pipeline.core.loading import load_params, parse_params, read_yaml, with_overrides
from pipeline.core.spec import run_specs
from pipeline.core.variant import Variant
from tests.support.repo import REPO

# A valid configuration of every section, with the variants the edits below change; the
# tests edit this, never the repository's params.yaml (which people tune).
VALID: dict[str, Any] = {
    "data": {"dataset": "digits", "val_fraction": 0.2, "test_fraction": 0.2},
    "model": {"hidden_sizes": [64, 32]},
    "train": {"epochs": 3, "lr": 0.001, "seeds": [0, 1, 2], "device": "cpu"},
    "variants": {
        "baseline": {},
        "dropout": {"dropout": 0.5, "input_dropout": 0.2},
        "l2": {"l2": 0.001},
        "l1": {"l1": 0.00003},
        "weight_decay": {"optimizer": "adamw", "weight_decay": 1.0},
    },
    "mlflow": {"experiment": "config-tests"},
    "report": {"baseline": "baseline"},
    "sweep": {"l2": [0.001, 0.01]},
}


@pytest.fixture
def valid() -> dict[str, Any]:
    return copy.deepcopy(VALID)


def params_text() -> str:
    """VALID as a params.yaml file holds it."""
    return yaml.safe_dump(VALID, sort_keys=False)


def edited(raw: dict[str, Any], edits: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for path, value in edits:
        node = out
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return out


def test_the_repository_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.report.baseline in params.variants


def test_a_valid_configuration_parses_into_typed_values(valid: dict[str, Any]) -> None:
    params = parse_params(valid)
    assert isinstance(params, Params)
    assert params.train.lr == 0.001
    assert params.variants["weight_decay"].optimizer == "adamw"
    assert params.variants["dropout"].dropout == 0.5
    assert params.variants["baseline"].l2 == 0.0  # everything left out is off
    assert params.sweep.l2 == [0.001, 0.01] and params.sweep.dropout == []


BAD = [
    # (id, edits, fragment the message must contain)
    ("unknown-top-level", [(("bogus",), 1)], "unknown key 'bogus'"),
    ("unknown-variant-key", [(("variants", "l2", "lambda"), 0.1)], "'variants.l2.lambda'"),
    ("unknown-data-key", [(("data", "seed"), 1)], "'data.seed'"),
    ("lr-string", [(("train", "lr"), "abc")], "train.lr"),
    ("lr-numeric-string", [(("train", "lr"), "0.001")], "train.lr"),
    ("lr-nan", [(("train", "lr"), float("nan"))], "train.lr: must be a finite number"),
    ("lr-inf", [(("train", "lr"), float("inf"))], "train.lr: must be a finite number"),
    ("lr-zero", [(("train", "lr"), 0.0)], "train.lr"),
    ("lr-negative", [(("train", "lr"), -0.1)], "train.lr"),
    ("dropout-one", [(("variants", "dropout", "dropout"), 1.0)], "variants.dropout.dropout"),
    ("dropout-negative", [(("variants", "dropout", "dropout"), -0.1)], "variants.dropout.dropout"),
    (
        "dropout-nan",
        [(("variants", "dropout", "dropout"), float("nan"))],
        "variants.dropout.dropout",
    ),
    (
        "dropout-list-length",
        [(("variants", "dropout", "dropout"), [0.5])],
        "variants.dropout.dropout has 1 rates but the mlp has 2 hidden blocks",
    ),
    (
        "dropout-list-entry",
        [(("variants", "dropout", "dropout"), [0.5, 1.5])],
        "variants.dropout.dropout",
    ),
    (
        "input-dropout-one",
        [(("variants", "dropout", "input_dropout"), 1.0)],
        "variants.dropout.input_dropout",
    ),
    ("l2-negative", [(("variants", "l2", "l2"), -1)], "variants.l2.l2"),
    ("l1-negative", [(("variants", "l1", "l1"), -1e-5)], "variants.l1.l1"),
    (
        "weight-decay-negative",
        [(("variants", "weight_decay", "weight_decay"), -1.0)],
        "variants.weight_decay.weight_decay",
    ),
    ("max-norm-zero", [(("variants", "l2", "max_norm"), 0.0)], "variants.l2.max_norm"),
    ("patience-zero", [(("variants", "l2", "patience"), 0)], "variants.l2.patience"),
    ("variant-optimizer", [(("variants", "l2", "optimizer"), "rmsprop")], "variants.l2.optimizer"),
    (
        "penalize-bias-string",
        [(("variants", "l2", "penalize_bias"), "yes")],
        "variants.l2.penalize_bias",
    ),
    ("hidden-empty", [(("model", "hidden_sizes"), [])], "model.hidden_sizes"),
    ("hidden-zero", [(("model", "hidden_sizes"), [512, 0])], "model.hidden_sizes"),
    ("activation", [(("model", "activation"), "sigmoid")], "model.activation"),
    ("batch-zero", [(("train", "batch_size"), 0)], "train.batch_size"),
    ("epochs-zero", [(("train", "epochs"), 0)], "train.epochs"),
    ("epochs-fraction", [(("train", "epochs"), 2.5)], "train.epochs"),
    ("epochs-bool", [(("train", "epochs"), True)], "train.epochs"),
    ("momentum-one", [(("train", "momentum"), 1.0)], "train.momentum"),
    ("optimizer", [(("train", "optimizer"), "rmsprop")], "train.optimizer"),
    ("seeds-duplicate", [(("train", "seeds"), [0, 1, 1])], "train.seeds: seeds must be distinct"),
    ("seeds-empty", [(("train", "seeds"), [])], "train.seeds"),
    ("seeds-negative", [(("train", "seeds"), [0, -1])], "train.seeds"),
    ("rounds-step-zero", [(("rounds",), {"max": 5, "step": 0})], "rounds.step"),
    ("rounds-unknown-key", [(("rounds",), {"max": 5, "mn": 3})], "unknown key 'rounds.mn'"),
    ("rounds-without-max", [(("rounds",), {"step": 1})], "rounds.max: required"),
    ("device-tpu", [(("train", "device"), "tpu")], "train.device"),
    ("device-cuda-junk", [(("train", "device"), "cuda:x")], "train.device"),
    ("threads-negative", [(("train", "threads"), -1)], "train.threads"),
    ("dataset", [(("data", "dataset"), "imagenet")], "data.dataset"),
    (
        "val-plus-test",
        [(("data", "val_fraction"), 0.5), (("data", "test_fraction"), 0.5)],
        "val_fraction + test_fraction must be below 1",
    ),
    ("val-zero", [(("data", "val_fraction"), 0.0)], "data.val_fraction"),
    ("label-noise-one", [(("data", "label_noise"), 1.0)], "data.label_noise"),
    ("train-size-zero", [(("data", "train_size"), 0)], "data.train_size"),
    ("normalize", [(("data", "normalize"), "minmax")], "data.normalize"),
    ("download-string", [(("data", "download"), "no")], "data.download"),
    ("npz-without-path", [(("data", "dataset"), "npz")], "data.path"),
    (
        "imagefolder-without-path",
        [(("data", "dataset"), "imagefolder")],
        "dataset 'imagefolder' needs data.path, the folder of <class>/<image> files",
    ),
    ("csv-without-path", [(("data", "dataset"), "csv")], "dataset 'csv' needs data.path"),
    (
        "parquet-without-label-column",
        [(("data", "dataset"), "parquet"), (("data", "path"), "t.parquet")],
        "dataset 'parquet' needs data.label_column",
    ),
    (
        "label-column-of-npz",
        [
            (("data", "dataset"), "npz"),
            (("data", "path"), "a.npz"),
            (("data", "label_column"), "y"),
        ],
        "data.label_column is for csv and parquet only, not 'npz'",
    ),
    ("label-column-number", [(("data", "label_column"), 3)], "data.label_column"),
    ("test-split-unknown", [(("data", "test_split"), "random")], "data.test_split"),
    (
        "official-test-split-of-a-pool",
        [(("data", "test_split"), "official")],
        "data.test_split official needs a dataset with an official test set "
        "(mnist, fashion-mnist, kmnist, cifar10), not 'digits'",
    ),
    (
        "baseline-not-a-variant",
        [(("report", "baseline"), "nope")],
        "report.baseline 'nope' is not one of the variants",
    ),
    ("variant-name-dot", [(("variants", "a.b"), {})], "variant name 'a.b'"),
    ("variant-name-digit", [(("variants", "1st"), {})], "variant name '1st'"),
    ("variant-not-mapping", [(("variants", "l2"), 0.1)], "variants.l2"),
    ("no-variants", [(("variants",), {})], "variants"),
    ("experiment-empty", [(("mlflow", "experiment"), "")], "mlflow.experiment"),
    ("lr-schedule-unknown", [(("train", "lr_schedule"), "exponential")], "train.lr_schedule"),
    ("lr-schedule-null", [(("train", "lr_schedule"), None)], "train.lr_schedule"),
    ("lr-schedule-typo-key", [(("train", "lr_sched"), "step")], "unknown key 'train.lr_sched'"),
    ("lr-step-size-zero", [(("train", "lr_step_size"), 0)], "train.lr_step_size"),
    ("lr-step-size-fraction", [(("train", "lr_step_size"), 2.5)], "train.lr_step_size"),
    ("lr-gamma-zero", [(("train", "lr_gamma"), 0.0)], "train.lr_gamma"),
    ("lr-gamma-one", [(("train", "lr_gamma"), 1.0)], "train.lr_gamma"),
    ("lr-gamma-string", [(("train", "lr_gamma"), "0.5")], "train.lr_gamma"),
    ("lr-pct-start-zero", [(("train", "lr_pct_start"), 0.0)], "train.lr_pct_start"),
    ("lr-pct-start-one", [(("train", "lr_pct_start"), 1.0)], "train.lr_pct_start"),
    (
        "lr-step-size-past-the-epochs",
        [(("train", "lr_schedule"), "step"), (("train", "lr_step_size"), 3)],
        "train: lr_step_size (3) must be below epochs (3)",
    ),
    (
        "variant-lr-schedule",
        [(("variants", "l2", "lr_schedule"), "cosine")],
        "variants.l2.lr_schedule: a training setting every variant shares; set train.lr_schedule",
    ),
    ("variant-lr-gamma", [(("variants", "l2", "lr_gamma"), 0.5)], "variants.l2.lr_gamma: a"),
    ("variant-lr", [(("variants", "l2", "lr"), 0.1)], "set train.lr (a variant may override"),
]


@pytest.mark.parametrize(("edits", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_edit_is_rejected_naming_the_key(
    valid: dict[str, Any], edits: list, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params(edited(valid, edits))
    message = str(info.value)
    assert fragment in message
    assert message.startswith("params.yaml: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("schedule", "settings", "logged"),
    [
        ({}, {}, {"lr_schedule": "none"}),
        ({"lr_schedule": "cosine"}, {}, {"lr_schedule": "cosine"}),
        (
            {"lr_schedule": "step", "lr_step_size": 2, "lr_gamma": 0.5},
            {"lr_step_size": 2, "lr_gamma": 0.5},
            {"lr_schedule": "step", "lr_step_size": 2, "lr_gamma": 0.5},
        ),
        (
            {"lr_schedule": "one_cycle", "lr_pct_start": 0.25},
            {"lr_pct_start": 0.25},
            {"lr_schedule": "one_cycle", "lr_pct_start": 0.25},
        ),
    ],
    ids=["none", "cosine", "step", "one_cycle"],
)
def test_a_learning_rate_schedule_and_the_settings_it_logs(
    valid: dict[str, Any], schedule: dict, settings: dict, logged: dict
) -> None:
    """Each schedule is accepted; a run logs its name and only the settings it uses (none
    when there is no schedule: its runs log what they logged before schedules existed, but
    for `lr_schedule: none`)."""
    params = parse_params(edited(valid, [(("train", k), v) for k, v in schedule.items()]))
    assert params.train.lr_schedule == schedule.get("lr_schedule", "none")
    assert params.train.lr_schedule_settings() == settings
    [spec] = run_specs(params, "l2", [0])
    hyperparameters = spec.hyperparameters()
    every = {"lr_schedule", "lr_step_size", "lr_gamma", "lr_pct_start"}
    assert {k: v for k, v in hyperparameters.items() if k in every} == logged


def test_the_default_schedule_is_none_and_settings_of_another_schedule_do_not_act(
    valid: dict[str, Any],
) -> None:
    assert TrainConfig().lr_schedule == "none"
    # step's settings while the schedule is not step: kept, unchecked against the epochs
    params = parse_params(edited(valid, [(("train", "lr_step_size"), 50)]))
    assert params.train.lr_schedule == "none" and params.train.lr_schedule_settings() == {}


def test_a_schedule_is_overridden_on_the_command_line_like_lr(valid: dict[str, Any]) -> None:
    params = with_overrides(
        parse_params(valid), "l2", {"lr_schedule": "step", "lr_step_size": "1", "lr_gamma": "0.5"}
    )
    assert (params.train.lr_schedule, params.train.lr_step_size) == ("step", 1)
    with pytest.raises(ConfigError, match=r"^override: train\.lr_schedule"):
        with_overrides(parse_params(valid), "l2", {"lr_schedule": "linear"})


def test_the_datasets_of_ones_own_files_and_the_official_test_split(
    valid: dict[str, Any],
) -> None:
    data = parse_params(
        edited(
            valid,
            [(("data",), {"dataset": "csv", "path": "data/raw/t.csv", "label_column": "kind"})],
        )
    ).data
    assert data.label_column == "kind" and data.test_split == "pool"
    assert (
        parse_params(
            edited(valid, [(("data",), {"dataset": "imagefolder", "path": "data/raw/imgs"})])
        ).data.label_column
        is None
    )
    # official: test_fraction is not used, so val_fraction + test_fraction may reach 1
    official = {"dataset": "fashion-mnist", "test_split": "official", "val_fraction": 0.9}
    assert parse_params(edited(valid, [(("data",), official)])).data.test_split == "official"


def test_a_description_key_is_refused_saying_to_write_a_comment(valid: dict[str, Any]) -> None:
    """What a variant tests is a comment: as a key, DVC would retrain the variant when only
    its words changed."""
    raw = edited(valid, [(("variants", "l2", "description"), "L2 penalty")])
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    assert str(info.value) == (
        "params.yaml: variants.l2.description: write what a variant tests as a comment "
        "(`l2:  # ...`); as a key it is a parameter its train stage depends on, and editing "
        "it would retrain the variant"
    )


def test_missing_variants_section(valid: dict[str, Any]) -> None:
    raw = copy.deepcopy(valid)
    del raw["variants"]
    with pytest.raises(ConfigError, match="variants: required but missing"):
        parse_params(raw)


@pytest.mark.parametrize("raw", [None, [], "text", 3])
def test_top_level_must_be_a_mapping(raw: Any) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_params(raw)


def test_variant_name_with_trailing_newline(valid: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="variant name"):
        parse_params(edited(valid, [(("variants", "l2\n"), {})]))


# --- YAML text -----------------------------------------------------------------------------------


def test_yaml_nan_and_inf_in_text_are_parsed_and_rejected(tmp_path: Path) -> None:
    text = params_text()
    assert "  lr: 0.001\n" in text
    for literal in (".nan", ".inf", "-.inf"):
        path = tmp_path / "params.yaml"
        path.write_text(text.replace("  lr: 0.001\n", f"  lr: {literal}\n"))
        raw = read_yaml(path)
        assert isinstance(raw["train"]["lr"], float)  # a float, not the string '.nan'
        with pytest.raises(ConfigError, match=r"^params\.yaml: train\.lr: must be a finite"):
            load_params(path)


def test_params_that_are_not_utf8_name_the_file_and_the_line(tmp_path: Path) -> None:
    # A Latin-1 "café" in a comment at the end, past the first few kilobytes.
    text = params_text() + "# " + "x" * 5000 + "\n# café\n"
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode("latin-1"))
    line = text.count("\n")  # the comment is the last line
    with pytest.raises(ConfigError) as info:
        load_params(path)
    message = str(info.value)
    assert message == f"{path}: not UTF-8 text (line {line}: byte 0xe9); save it as UTF-8"


def test_yaml_exponent_floats_without_a_dot(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML's default) reads these as strings; the study reads them as floats.
    path = tmp_path / "p.yaml"
    path.write_text("a: 1e-4\nb: 1E+3\nc: 2.5e-3\nd: .5\ne: 7\nf: abc\ng: 1_000\n")
    raw = read_yaml(path)
    assert raw["a"] == 0.0001 and type(raw["a"]) is float
    assert raw["b"] == 1000.0 and type(raw["b"]) is float
    assert raw["c"] == 0.0025
    assert raw["d"] == 0.5
    assert raw["e"] == 7 and type(raw["e"]) is int
    assert raw["f"] == "abc"


def test_yaml_exponent_lr_loads_as_params(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(params_text().replace("  lr: 0.001\n", "  lr: 1e-4\n"))
    assert load_params(path).train.lr == 0.0001


def test_read_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_yaml(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line \d+\)"):
        read_yaml(bad)


def test_load_params_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text("variants:\n  base: {}\nreport:\n  baseline: base\ntrain:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match=r"^custom\.yaml: train\.epochs"):
        load_params(path)


# --- the models ----------------------------------------------------------------------------------


def test_params_variant_lookup(valid: dict[str, Any]) -> None:
    params = parse_params(valid)
    assert params.variant("l2").l2 == 0.001
    with pytest.raises(ConfigError) as info:
        params.variant("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in valid["variants"]:
        assert name in message


def test_models_are_frozen(valid: dict[str, Any]) -> None:
    params = parse_params(valid)
    with pytest.raises(ValidationError):
        params.train.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        params.variants["l2"].l2 = 0.5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        params.data = DataConfig()  # type: ignore[misc]
    assert params.train.lr == 0.001


def test_ints_are_accepted_for_floats_but_strings_never_for_numbers() -> None:
    assert TrainConfig(lr=1).lr == 1.0
    assert Variant(dropout=0).dropout == 0
    assert Variant(dropout=[0.1, 0.2]).dropout == [0.1, 0.2]
    with pytest.raises(ValidationError):
        Variant(l2="0.1")
    with pytest.raises(ValidationError):
        TrainConfig(seeds=["0"])


def test_defaults_are_off() -> None:
    v = Variant()
    assert (v.dropout, v.input_dropout, v.l1, v.l2, v.weight_decay) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert v.optimizer is None and v.max_norm is None and v.patience is None
    assert v.penalize_bias is False


def test_a_key_written_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("variants:\n  dropout:\n    dropout: 0.3\n    l2: 0.01\n    dropout: 0.5\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert str(info.value) == (
        f"{path}: not valid YAML (line 5): key 'dropout' written twice in one mapping "
        "(lines 3 and 5)"
    )
    # The same key in different mappings, and YAML's merge key, are not repeats.
    path.write_text("a: &shared\n  x: 1\nb:\n  <<: *shared\n  y: 2\nc:\n  x: 3\n")
    assert read_yaml(path) == {"a": {"x": 1}, "b": {"x": 1, "y": 2}, "c": {"x": 3}}


def test_rounds_plan_their_looks(valid: dict[str, Any]) -> None:
    params = parse_params(edited(valid, [(("rounds",), {"max": 10, "step": 3})]))
    assert params.rounds is not None
    assert params.rounds.looks(params.train.seeds) == (3, 6, 9, 10)  # the last look at max
    assert params.rounds.seed_order(params.train.seeds) == list(range(10))
    assert parse_params(valid).rounds is None  # left out: no rounds


def test_the_fault_injection_settings_are_valid_params() -> None:
    # `make chaos` runs a study on the settings of its own; they must stay a valid params.yaml.
    spec = importlib.util.spec_from_file_location("chaos", REPO / "scripts" / "chaos.py")
    chaos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chaos)
    params = parse_params(chaos.PARAMS)
    assert params.rounds is not None and len(params.train.seeds) >= 2  # its rounds stage trains
    params.check_rounds()
