"""The MLflow runs a scratch repository's store holds, read with a client; and a store of a
test's own, in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


@contextmanager
def own_store(folder: Path) -> Iterator[str]:
    """A SQLite store in `folder` for this process's MLflow (the URI set, and in
    MLFLOW_TRACKING_URI for what reads it there); both as they were, and no run left active,
    afterwards. Its runs go to the store's default experiment: `mlflow.set_experiment` would
    set process-wide state that sends a later test's runs to an experiment its store lacks."""
    previous_uri, previous_env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        with suppress(MlflowException):  # a run the test deleted cannot be ended
            mlflow.end_run()
        mlflow.set_tracking_uri(previous_uri)
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


def client_for(repo: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def training_runs(repo: Path, experiment: str = "tiny-study") -> list:
    """Every run of `experiment` in `repo`'s store but the report's and the variants' parents."""
    exp = client_for(repo).get_experiment_by_name(experiment)
    assert exp is not None, "the experiment was not created"
    runs = client_for(repo).search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("kind") not in ("report", "variant")]
