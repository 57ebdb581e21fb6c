"""Each epoch's metrics reach the tracking store exactly once, or the run is not FINISHED."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline.core.errors import MetricsLost
from pipeline.tracking.epoch_log import EpochMetrics
from tests.support.tracking import own_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MlflowClient]:
    """A real SQLite store of this test's own, and no run left active after it."""
    with own_store(tmp_path) as uri:
        yield MlflowClient(uri)


def steps(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_a_resumed_run_logs_only_the_epochs_the_store_lacks(store: MlflowClient) -> None:
    run = mlflow.start_run()
    first = EpochMetrics(run.info.run_id, resumed=False)
    for epoch in (1, 2, 3):
        first.log(epoch, {"val_loss": float(epoch), "train_loss": 10.0 * epoch})
    first.confirm()
    # As if interrupted after epoch 3 with a checkpoint at 2: epochs 3 to 5 are trained again.
    again = EpochMetrics(run.info.run_id, resumed=True)
    for epoch in (3, 4, 5):
        again.log(epoch, {"val_loss": epoch + 0.5, "train_loss": 10.0 * epoch})
    again.confirm()
    mlflow.end_run()
    assert steps(store, run.info.run_id, "val_loss") == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),  # logged before the interrupt: kept, not doubled
        (4, 4.5),
        (5, 5.5),
    ]
    assert [s for s, _ in steps(store, run.info.run_id, "train_loss")] == [1, 2, 3, 4, 5]


def test_metrics_that_fail_to_reach_the_store_raise(store: MlflowClient) -> None:
    run = mlflow.start_run()
    metrics = EpochMetrics(run.info.run_id, resumed=False)
    metrics.log(1, {"val_loss": 1.0})
    metrics.confirm()
    # Someone deletes the run in the UI while it trains: the store refuses its next writes.
    store.delete_run(run.info.run_id)
    metrics.log(2, {"val_loss": 2.0})
    with pytest.raises(MetricsLost, match="per-epoch metrics did not reach the store"):
        metrics.confirm()
    assert steps(store, run.info.run_id, "val_loss") == [(1, 1.0)]
