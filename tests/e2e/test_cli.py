"""The command line as a user meets it: bad input fails early and cleanly; `study` runs whole."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support.repo import REPO, TINY_PARAMS, Runner, make_runner, scratch_repo

pytestmark = pytest.mark.e2e
PY = sys.executable


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def edited(path: str, value: object) -> dict:
    """TINY_PARAMS with one dotted key set to `value`."""
    return edited_dict(json.loads(json.dumps(TINY_PARAMS)), path, value)


def edited_dict(params: dict, path: str, value: object) -> dict:
    *parents, last = path.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[last] = value
    return params


def assert_clean_failure(result, *needles: str) -> None:
    """Exit code 2, one line on stderr naming the problem, and no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_nothing_written(repo: Path) -> None:
    for name in ("mlflow.db", "mlruns", "models", "metrics", "reports"):
        assert not (repo / name).exists(), f"{name} was created by a failed command"


# (case, edits of params.yaml, extra command-line arguments to `train --variant l2`, needle)
BAD_INPUT = [
    ("dropout above 1", {"variants.dropout.dropout": 1.5}, [], "variants.dropout.dropout"),
    (
        "negative input dropout",
        {"variants.dropout.input_dropout": -0.1},
        [],
        "variants.dropout.input_dropout",
    ),
    ("lr not a number", {"train.lr": "abc"}, [], "train.lr"),
    ("lr NaN", {"train.lr": float("nan")}, [], "train.lr"),
    ("lr infinite", {"train.lr": float("inf")}, [], "train.lr"),
    ("batch size 0", {"train.batch_size": 0}, [], "train.batch_size"),
    ("epochs fractional", {"train.epochs": 2.5}, [], "train.epochs"),
    ("no seeds", {"train.seeds": []}, [], "train.seeds"),
    ("empty hidden sizes", {"model.hidden_sizes": []}, [], "model.hidden_sizes"),
    ("negative hidden size", {"model.hidden_sizes": [-5]}, [], "model.hidden_sizes"),
    ("negative l2", {"variants.l2.l2": -1.0}, [], "variants.l2.l2"),
    ("unknown variant key", {"variants.l2.l3": 0.1}, [], "variants.l2.l3"),
    ("unknown section", {"optimiser": {"lr": 1}}, [], "optimiser"),
    ("unknown dataset", {"data.dataset": "imagenet"}, [], "data.dataset"),
    ("unknown device", {"train.device": "tpu"}, [], "train.device"),
    ("label noise 1", {"data.label_noise": 1.0}, [], "data.label_noise"),
    (
        "no training data left",
        {"data.val_fraction": 0.6, "data.test_fraction": 0.5},
        [],
        "val_fraction + test_fraction",
    ),
    ("npz without path", {"data.dataset": "npz"}, [], "data.path"),
    ("baseline not a variant", {"report.baseline": "none"}, [], "report.baseline"),
    (
        "rounds on one seed",
        {"train.seeds": [0], "rounds": {"max": 4}},
        [],
        "rounds need at least 2 train.seeds",
    ),
    (
        "rounds max below the seeds",
        {"train.seeds": [0, 1, 2], "rounds": {"max": 2}},
        [],
        "rounds.max (2) must be at least the number of train.seeds (3)",
    ),
    ("override lr not a number", {}, ["--lr", "abc"], "train.lr"),
    ("override dropout above 1", {}, ["--dropout", "1.5"], "variants.l2.dropout"),
    ("override epochs 0", {}, ["--epochs", "0"], "train.epochs"),
    ("override negative decay", {}, ["--weight-decay", "-1"], "variants.l2.weight_decay"),
    ("override batch NaN", {}, ["--batch-size", ".nan"], "train.batch_size"),
    ("override unknown optimizer", {}, ["--optimizer", "lbfgs"], "variants.l2.optimizer"),
    ("override dropout list too long", {}, ["--dropout", "[0.1, 0.2]"], "2 rates"),
    ("unknown option", {}, ["--dropuot", "0.3"], "No such option '--dropuot'"),
    ("params naming a folder", {}, ["--params", "."], "'.' is a directory"),
]


@pytest.mark.parametrize(
    ("case", "edits", "args", "needle"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_fails_before_anything_runs(
    tmp_path: Path, case: str, edits: dict, args: list[str], needle: str
) -> None:
    params = json.loads(json.dumps(TINY_PARAMS))
    for key, value in edits.items():
        params = edited_dict(params, key, value)
    write_params(tmp_path, params)
    result = make_runner(tmp_path)(
        PY, "-m", "pipeline", "train", "--variant", "l2", *args, check=False, PYTHONPATH=str(REPO)
    )
    assert_clean_failure(result, needle)
    assert_nothing_written(tmp_path)
    assert not (tmp_path / "data").exists()


def test_every_command_validates_params_first(tmp_path: Path) -> None:
    write_params(tmp_path, edited("variants.dropout.dropout", 1.5))
    run = make_runner(tmp_path)
    for args in (["prepare"], ["report"], ["study"], ["train", "--variant", "l2"]):
        result = run(PY, "-m", "pipeline", *args, check=False, PYTHONPATH=str(REPO))
        assert_clean_failure(result, "variants.dropout.dropout")
    assert_nothing_written(tmp_path)


def test_one_run_with_overrides_needs_no_rounds(tmp_path: Path) -> None:
    # The README's "one run with overrides" in a study with rounds: one seed, no rounds planned.
    params = edited("rounds", {"max": 4, "step": 2})
    repo = scratch_repo(tmp_path / "repo", params)
    run = make_runner(repo)
    run(PY, "-m", "pipeline", "prepare")
    result = run(PY, "-m", "pipeline", "train", "--variant", "l2", "--l2", "3e-4", "--seed", "5")
    assert "logged to MLflow only" in result.stderr
    assert "l2-seed5" in result.stderr
    assert not (repo / "models").exists() and not (repo / "metrics").exists()
    # The study's own stage still refuses rounds it cannot plan, before it trains.
    write_params(repo, edited_dict(params, "train.seeds", [0]))
    result = run(PY, "-m", "pipeline", "train", "--variant", "l2", check=False)
    assert_clean_failure(result, "rounds need at least 2 train.seeds")


def test_unknown_variant_and_missing_data(tiny_repo: Path, run_in: Runner) -> None:
    result = run_in(PY, "-m", "pipeline", "train", "--variant", "nope", check=False)
    assert_clean_failure(result, "unknown variant 'nope'", "baseline, dropout, l2")
    result = run_in(PY, "-m", "pipeline", "train", "--variant", "l2", check=False)
    assert_clean_failure(result, "data/prepared", "prepare")
    assert_nothing_written(tiny_repo)


def test_corrupted_prepared_data_is_refused(tiny_repo: Path, run_in: Runner) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    (tiny_repo / "data" / "prepared" / "pool.npz").write_bytes(b"not a zip file")
    result = run_in(PY, "-m", "pipeline", "train", "--variant", "baseline", check=False)
    assert_clean_failure(result, "pool.npz", "corrupted")
    assert_nothing_written(tiny_repo)


def test_npz_with_mismatched_lengths(tmp_path: Path) -> None:
    np.savez(tmp_path / "mine.npz", x=np.zeros((10, 4)), y=np.zeros(9, dtype=np.int64))
    params = edited("data.dataset", "npz")
    params["data"]["path"] = "mine.npz"
    write_params(tmp_path, params)
    result = make_runner(tmp_path)(
        PY, "-m", "pipeline", "prepare", check=False, PYTHONPATH=str(REPO)
    )
    assert_clean_failure(result, "x must be (N, ...) and y (N,)")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"x": np.zeros((10, 4)), "y": np.arange(10) % 2 + 0.5}, "labels y must be integers"),
        ({"x": np.zeros((10, 4))}, "missing array(s) y"),
    ],
)
def test_bad_npz_contents(tmp_path: Path, arrays: dict, needle: str) -> None:
    np.savez(tmp_path / "mine.npz", **arrays)
    params = edited("data.dataset", "npz")
    params["data"]["path"] = "mine.npz"
    write_params(tmp_path, params)
    result = make_runner(tmp_path)(
        PY, "-m", "pipeline", "prepare", check=False, PYTHONPATH=str(REPO)
    )
    assert_clean_failure(result, "mine.npz", needle)
    assert not (tmp_path / "data").exists()


def test_split_that_leaves_val_empty(tmp_path: Path) -> None:
    write_params(tmp_path, edited("data.val_fraction", 0.0001))
    result = make_runner(tmp_path)(
        PY, "-m", "pipeline", "prepare", check=False, PYTHONPATH=str(REPO)
    )
    assert_clean_failure(result, "the val split is empty")
    assert not (tmp_path / "data").exists()


def test_offline_torchvision_dataset_says_what_to_do(tmp_path: Path) -> None:
    params = edited("data.dataset", "fashion-mnist")
    params["data"]["download"] = False
    write_params(tmp_path, params)
    result = make_runner(tmp_path)(
        PY, "-m", "pipeline", "prepare", check=False, PYTHONPATH=str(REPO)
    )
    assert_clean_failure(result, "fashion-mnist", "data/raw")


def test_study_without_dvc(tiny_repo: Path, run_in: Runner) -> None:
    params = edited("mlflow.log_model", False)
    params["train"]["seeds"] = [3]
    write_params(tiny_repo, params)
    result = run_in(PY, "-m", "pipeline", "study")
    assert "gap_report.md" in result.stdout
    assert "mlflow ui" in result.stdout
    summary = json.loads((tiny_repo / "reports" / "summary.json").read_text())
    assert summary["conditions"]["seeds"] == [3]
    assert set(summary["variants"]) == {"baseline", "dropout", "l2"}
    # With one seed there is no interval, and the report must not claim a difference.
    assert summary["variants"]["l2"]["vs_baseline"]["loss_gap_last"]["clear"] is False
    assert "too few seeds" in (tiny_repo / "reports" / "gap_report.md").read_text()
    # Not a terminal: plain progress lines, one per epoch.
    assert result.stderr.count("baseline-seed3 epoch") == TINY_PARAMS["train"]["epochs"]


def test_a_tracking_uri_mlflow_cannot_use_fails_in_one_line(tmp_path: Path) -> None:
    write_params(tmp_path, TINY_PARAMS)
    run = make_runner(tmp_path)
    for args in (["train", "--variant", "l2"], ["compare", "--by", "label_noise"]):
        result = run(
            PY,
            "-m",
            "pipeline",
            *args,
            check=False,
            PYTHONPATH=str(REPO),
            MLFLOW_TRACKING_URI="nonsense://somewhere",
        )
        assert_clean_failure(result, "MLFLOW_TRACKING_URI 'nonsense://somewhere'")
    assert_nothing_written(tmp_path)


def test_compare_without_a_store_says_so_and_creates_none(tmp_path: Path) -> None:
    write_params(tmp_path, TINY_PARAMS)
    result = make_runner(tmp_path)(
        PY, "-m", "pipeline", "compare", "--by", "label_noise", check=False, PYTHONPATH=str(REPO)
    )
    assert_clean_failure(result, "no MLflow store at", "nothing has been tracked here yet")
    assert_nothing_written(tmp_path)
