"""A trained seed's MLflow model: it answers raw inputs, and is logged with its requirements
checked against the installed versions, without MLflow's scan of every installed package."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.utils import requirements_utils
from safetensors.numpy import load

from pipeline.core.config import DataConfig, ModelConfig
from pipeline.core.records import RunRecord
from pipeline.core.spec import RunSpec
from pipeline.data.pool import pool_of
from pipeline.data.splits import draw
from pipeline.executors.mlflow_model import log_model
from pipeline.executors.tracked_stack import RunContext, finish_run, record_of
from pipeline.training.device import DeviceData
from pipeline.training.trainer import TrainResult
from tests.support.tracking import own_store
from tests.support.training import CPU, problem, spec, train


def trained_and_logged(data: DeviceData, run_spec: RunSpec) -> tuple[TrainResult, RunRecord, str]:
    """One seed trained on `data`, its record and its MLflow model logged to a run of the
    current store: the result, the record and the model's URI."""
    result = train(run_spec, data)
    with mlflow.start_run() as run:
        record = record_of(run_spec, result, run.info.run_id, data.normalization)
        log_model(record, result.model, data, ModelConfig())
    [logged] = mlflow.MlflowClient().search_logged_models([run.info.experiment_id])
    return result, record, logged.model_uri


def test_a_model_logs_without_scanning_the_installed_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scan() -> None:
        raise AssertionError("MLflow scanned every installed package")

    # As in a fresh process: MLflow has not mapped the installed packages yet.
    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(requirements_utils.importlib_metadata, "packages_distributions", scan)
    with own_store(tmp_path):
        _, _, model_uri = trained_and_logged(DeviceData.of(problem(), CPU), spec())
        folder = Path(mlflow.artifacts.download_artifacts(model_uri))
    pinned = {
        f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow", "safetensors")
    } | {f"torch=={torch.__version__.split('+')[0]}"}
    assert set((folder / "requirements.txt").read_text().split()) == pinned


def test_the_requirements_check_still_names_a_mismatch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With the map MLflow is given (empty), a requirement the environment does not meet is
    still reported, with the installed version."""
    from pipeline.executors import mlflow_model

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    mlflow_model._check_requirements_without_a_package_scan()
    with caplog.at_level("WARNING", logger=requirements_utils.__name__):
        requirements_utils.warn_dependency_requirement_mismatches(["safetensors==0.0.1"])
    installed = importlib.metadata.version("safetensors")
    assert f"safetensors (current: {installed}, required: safetensors==0.0.1)" in caplog.text


def test_the_logged_model_answers_raw_inputs_as_the_run_measured(tmp_path: Path) -> None:
    """The MLflow model takes the inputs as the data file holds them, normalises them as
    `prepare` did its seed's training split, and answers each with its class and the class
    probabilities: on the raw test split it scores the test accuracy the run measured."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    x = rng.normal(0.0, 2.0, size=(3, 10))[y] + rng.normal(size=(300, 10))
    # each feature on a scale and offset of its own: only its own normalisation undoes them
    raw = (x * rng.uniform(1, 100, size=10) + rng.uniform(-500, 500, size=10)).astype(np.float32)
    np.savez(tmp_path / "pool.npz", x=raw, y=y)
    pool = pool_of(
        DataConfig(dataset="npz", path=str(tmp_path / "pool.npz"), normalize="per_feature")
    )
    prepared = draw(pool, 0)
    with own_store(tmp_path):
        result, record, model_uri = trained_and_logged(DeviceData.of(prepared, CPU), spec(epochs=5))
        model = mlflow.pyfunc.load_model(model_uri)

    answer = model.predict(pool.x[prepared.indices["test"]])
    assert list(answer.columns) == ["class", "probabilities"]
    probabilities = np.stack(answer["probabilities"].to_list())
    assert probabilities.shape == (len(prepared.test.y), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(answer["class"].to_numpy(), probabilities.argmax(axis=1))
    accuracy = float((answer["class"].to_numpy() == prepared.test.y).mean())
    assert accuracy == pytest.approx(result.summary["test_accuracy"], abs=1e-6)
    assert accuracy > 0.8  # a task the network learned: a wrong normalisation would show
    # The signature says so: raw float32 rows in, a class and probabilities out.
    signature = model.metadata.get_input_schema().to_dict()
    assert signature == [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, 10)}}]
    assert model.metadata.get_output_schema().input_names() == ["class", "probabilities"]
    # models/<variant>/seed<k>/ holds the same normalisation, for a network loaded from there.
    stats = load(record.model_files["normalization.safetensors"])
    assert np.array_equal(stats["mean"], prepared.normalization.mean)
    assert np.array_equal(stats["std"], prepared.normalization.std)
    # An example of the wrong width is refused in words.
    with pytest.raises(Exception, match="each example must have 10 features, got 9"):
        model.unwrap_python_model().predict(None, raw[:2, :9])


def test_the_summary_metrics_name_the_logged_model_and_the_data(tmp_path: Path) -> None:
    """MLflow 3's page of a logged model shows the metrics logged with its id: a finished
    seed's summary (best val loss, test accuracy, ...) is, with the dataset it was measured on."""
    data = DeviceData.of(problem(), CPU)
    run_spec = spec()
    result = train(run_spec, data)
    dataset = {"name": "toy", "digest": "0123456789ab", "source_type": "local", "source": "{}"}
    context = RunContext("toy", log_model=True, data_params={}, dataset=dataset)
    with own_store(tmp_path):
        with mlflow.start_run() as run:
            finish_run(run_spec, result, run.info.run_id, data, context)
        client = mlflow.MlflowClient()
        [logged] = client.search_logged_models([run.info.experiment_id])
        finished = client.get_run(run.info.run_id)
    on_the_model = {m.key: m for m in logged.metrics}
    assert set(on_the_model) == set(result.summary)
    for key, metric in on_the_model.items():
        assert metric.value == pytest.approx(result.summary[key])
        assert (metric.dataset_name, metric.dataset_digest) == ("toy", "0123456789ab")
    # ... and they are the run's metrics as before
    assert finished.data.metrics["test_accuracy"] == pytest.approx(result.summary["test_accuracy"])
