"""End to end: a user's own data on disk, of the tests' own making, through `make study`'s
path (`dvc repro`) in a scratch copy of the repository: an image folder on the CNN with
augmentation, a CSV on the MLP; a parquet table and a torchvision dataset's official test
split through the prepare stage; and a table the study cannot use, refused in one line."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.data import table, write_image_folder, write_mnist
from tests.support.repo import REPO, TINY_PARAMS, make_runner, scratch_repo

pytestmark = pytest.mark.e2e
PY = sys.executable


def tiny(data: dict, model: dict | None = None) -> dict:
    """TINY_PARAMS cut to one epoch of one seed, a baseline and one variant, on `data`."""
    params = copy.deepcopy(TINY_PARAMS)
    params["data"] = {"val_fraction": 0.25, "test_fraction": 0.25, **data}
    params["model"] = model or {"hidden_sizes": [16]}
    params["train"] |= {"epochs": 1, "seeds": [0], "checkpoint_every": 0}
    params["variants"] = {"baseline": {}, "l2": {"l2": 0.001}}
    params["mlflow"]["log_model"] = False
    return params


def write_params(folder: Path, params: dict) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def prepared_meta(repo: Path) -> dict:
    return json.loads((repo / "data" / "prepared" / "meta.json").read_text())


def test_an_image_folder_trains_the_cnn_with_augmentation_under_dvc(tmp_path: Path) -> None:
    params = tiny(
        {"dataset": "imagefolder", "path": "data/raw/shapes"},
        {"network": "cnn", "channels": [4], "hidden_sizes": [8]},
    )
    params["variants"] = {"baseline": {}, "augmented": {"crop": 1, "flip": True}}
    repo = scratch_repo(tmp_path / "repo", params)
    write_image_folder(repo / "data" / "raw" / "shapes", per_class=12, size=(8, 6), mode="RGB")
    run = make_runner(repo)
    done = run("dvc", "repro", "train@augmented")
    assert "Running stage 'prepare'" in done.stdout and "warning" not in done.stderr
    meta = prepared_meta(repo)
    assert meta["input_shape"] == [3, 6, 8] and meta["class_names"] == ["cat", "dog", "eel"]
    assert meta["sizes"] == {"train": 18, "val": 9, "test": 9}
    runs = json.loads((repo / "metrics" / "augmented" / "runs.json").read_text())
    assert [r["seed"] for r in runs] == [0]  # trained, tracked, its metrics written for DVC


def test_a_csv_trains_the_mlp_under_dvc(tmp_path: Path) -> None:
    params = tiny({"dataset": "csv", "path": "data/raw/plants.csv", "label_column": "kind"})
    repo = scratch_repo(tmp_path / "repo", params)
    pd.DataFrame(table(n=60)).to_csv(repo / "data" / "raw" / "plants.csv", index=False)
    done = make_runner(repo)("dvc", "repro", "train@baseline")
    assert "Running stage 'prepare'" in done.stdout and "warning" not in done.stderr
    meta = prepared_meta(repo)
    assert meta["dataset"] == "csv" and meta["source"] == "data/raw/plants.csv"
    assert meta["input_shape"] == [3] and meta["class_names"] == ["high", "low", "mid"]
    runs = json.loads((repo / "metrics" / "baseline" / "runs.json").read_text())
    assert [r["seed"] for r in runs] == [0]


def test_a_parquet_table_is_prepared(tmp_path: Path) -> None:
    pd.DataFrame(table(n=40, labels=(3, 1))).to_parquet(tmp_path / "t.parquet", index=False)
    write_params(
        tmp_path, tiny({"dataset": "parquet", "path": "t.parquet", "label_column": "kind"})
    )
    done = make_runner(tmp_path)(PY, "-m", "pipeline", "prepare", PYTHONPATH=str(REPO))
    assert "prepared parquet: 40 examples" in done.stdout
    assert prepared_meta(tmp_path)["class_names"] == ["1", "3"]


def test_a_table_the_study_cannot_use_fails_in_one_line(tmp_path: Path) -> None:
    columns = {**table(n=20), "colour": ["red"] * 20}
    pd.DataFrame(columns).to_csv(tmp_path / "t.csv", index=False)
    write_params(tmp_path, tiny({"dataset": "csv", "path": "t.csv", "label_column": "kind"}))
    result = make_runner(tmp_path)(
        PY, "-m", "pipeline", "prepare", check=False, PYTHONPATH=str(REPO)
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: t.csv: non-numeric feature column(s) colour; every column but the label "
        "column 'kind' must hold numbers"
    ]
    assert not (tmp_path / "data").exists()


def test_the_official_test_split_of_a_torchvision_dataset_is_prepared(tmp_path: Path) -> None:
    write_mnist(tmp_path / "raw", n_train=40, n_test=15)
    params = tiny({"dataset": "mnist", "root": "raw", "download": False, "test_split": "official"})
    write_params(tmp_path, params)
    done = make_runner(tmp_path)(PY, "-m", "pipeline", "prepare", PYTHONPATH=str(REPO))
    assert "train 30, val 10, test 15 (its official test set)" in done.stdout
    meta = prepared_meta(tmp_path)
    assert meta["test_split"] == "official" and meta["official_test"] == 15
