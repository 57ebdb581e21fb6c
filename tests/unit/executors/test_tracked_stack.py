"""A trained seed's MLflow model: logged with its requirements checked against the installed
versions, without MLflow's scan of every installed package."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.utils import requirements_utils

from pipeline.core.config import ModelConfig
from pipeline.executors.tracked_stack import log_model, record_of
from pipeline.training.device import DeviceData
from tests.support.tracking import own_store
from tests.support.training import CPU, problem, spec, train


def test_a_model_logs_without_scanning_the_installed_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scan() -> None:
        raise AssertionError("MLflow scanned every installed package")

    # As in a fresh process: MLflow has not mapped the installed packages yet.
    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(requirements_utils.importlib_metadata, "packages_distributions", scan)
    data = DeviceData.of(problem(), CPU)
    run_spec = spec()
    result = train(run_spec, data)
    with own_store(tmp_path):
        with mlflow.start_run() as run:
            record = record_of(run_spec, result, run.info.run_id)
            log_model(record, result.model, data, ModelConfig())
        [model] = mlflow.MlflowClient().search_logged_models([run.info.experiment_id])
        folder = Path(mlflow.artifacts.download_artifacts(model.model_uri))
    pinned = {
        f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow", "safetensors")
    } | {f"torch=={torch.__version__.split('+')[0]}"}
    assert set((folder / "requirements.txt").read_text().split()) == pinned


def test_the_requirements_check_still_names_a_mismatch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With the map MLflow is given (empty), a requirement the environment does not meet is
    still reported, with the installed version."""
    from pipeline.executors import tracked_stack

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    tracked_stack._check_requirements_without_a_package_scan()
    with caplog.at_level("WARNING", logger=requirements_utils.__name__):
        requirements_utils.warn_dependency_requirement_mismatches(["safetensors==0.0.1"])
    installed = importlib.metadata.version("safetensors")
    assert f"safetensors (current: {installed}, required: safetensors==0.0.1)" in caplog.text
