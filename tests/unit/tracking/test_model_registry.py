"""The report's recommendation in the Model Registry, against a real SQLite store: which variant
and seed it picks (validation data only), the alias it moves, and the versions it keeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pipeline.core.records import RunRecord
from pipeline.tracking import model_registry
from tests.support.tracking import own_store


def record(variant: str, seed: int, best_val_loss: float, test_accuracy: float) -> RunRecord:
    summary = {"best_val_loss": best_val_loss, "test_accuracy": test_accuracy}
    return RunRecord(variant, seed, {}, "cpu", False, summary, [])


def summary(verdicts: dict[str, tuple[str, float]]) -> dict:
    """A report summary: per variant its best val loss verdict and mean."""
    variants = {"baseline": {"best_val_loss": {"mean": 0.30}}}
    for name, (verdict, mean) in verdicts.items():
        comparison = {"verdict": verdict, "mean": mean - 0.30, "low": -0.1, "high": -0.01}
        variants[name] = {
            "best_val_loss": {"mean": mean},
            "vs_baseline": {"best_val_loss": {**comparison, "confidence": 0.99}},
        }
    return {"variants": variants}


RECORDS = {
    "baseline": [record("baseline", 0, 0.30, 0.90)],
    "l2": [record("l2", 0, 0.26, 0.99), record("l2", 1, 0.25, 0.80)],
    "dropout": [record("dropout", 0, 0.22, 0.91), record("dropout", 1, 0.24, 0.97)],
    "l1": [record("l1", 0, 0.10, 0.99)],
}


def test_the_recommendation_is_the_best_decided_variant_and_its_best_val_seed() -> None:
    # l1 has the lowest val loss but is undecided; dropout is decided better and lower than l2
    chosen = model_registry.recommend(
        summary({"l2": ("better", 0.255), "dropout": ("better", 0.23), "l1": ("undecided", 0.1)}),
        RECORDS,
    )
    assert chosen is not None and chosen.variant == "dropout"
    assert chosen.record.seed == 0  # lowest best val loss, though seed 1 tests better
    assert chosen.tags()["verdict"] == "better" and chosen.tags()["measure"] == "best_val_loss"


def test_nothing_is_recommended_when_nothing_is_decided_better() -> None:
    verdicts = {"l2": ("equivalent", 0.29), "dropout": ("worse", 0.4), "l1": ("undecided", 0.1)}
    assert model_registry.recommend(summary(verdicts), RECORDS) is None


class Constant(mlflow.pyfunc.PythonModel):
    def __init__(self, value: float):
        self.value = value

    def predict(self, context, model_input, params=None):
        return np.full((len(model_input), 1), self.value)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    with own_store(tmp_path) as uri:
        yield uri


def logged_run(value: float) -> str:
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=Constant(value))
    return run.info.run_id


def test_the_alias_moves_to_each_new_recommendation_and_no_version_is_deleted(store: str) -> None:
    first, second = logged_run(1.0), logged_run(2.0)
    chosen = model_registry.recommend(summary({"dropout": ("better", 0.23)}), RECORDS)
    assert model_registry.register("study", chosen, first, "report-1") == "1"
    x = np.zeros((2, 3))
    assert mlflow.pyfunc.load_model("models:/study@recommended").predict(x)[0, 0] == 1.0
    assert (
        model_registry.register("study", chosen, first, "report-2") == "1"
    )  # the same run: reused
    assert model_registry.register("study", chosen, second, "report-3") == "2"
    assert mlflow.pyfunc.load_model("models:/study@recommended").predict(x)[0, 0] == 2.0
    client = mlflow.MlflowClient()
    tags = client.get_model_version("study", "2").tags
    assert tags["variant"] == "dropout" and tags["report_run_id"] == "report-3"
    assert tags["interval"] == "-0.0700 [-0.1000, -0.0100]"
    assert model_registry.register("study", None, None, "report-4") is None  # nothing decided
    assert "recommended" not in client.get_registered_model("study").aliases
    assert {str(v.version) for v in client.search_model_versions("name = 'study'")} == {"1", "2"}
