"""The MLflow runs a scratch repository's store holds, read with a client."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient


def client_for(repo: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def training_runs(repo: Path, experiment: str = "tiny-study") -> list:
    """Every run of `experiment` in `repo`'s store but the report's."""
    exp = client_for(repo).get_experiment_by_name(experiment)
    assert exp is not None, "the experiment was not created"
    runs = client_for(repo).search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("kind") != "report"]
