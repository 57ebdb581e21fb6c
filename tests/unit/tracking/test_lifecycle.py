"""Runs opened together (`tracked_runs`): MLflow's system metrics only where its switch is on."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("switch", ["true", "false"])
def test_system_metrics_are_logged_only_with_mlflows_switch_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    import time

    import mlflow

    from pipeline.tracking.lifecycle import tracked_runs

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", switch)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    with tracked_runs("system", [("a", {}, None), ("b", {}, None)]) as runs:
        time.sleep(1.5)
    for run_id in runs.ids:
        logged = mlflow.MlflowClient().get_run(run_id).data.metrics
        cpu = "system/cpu_utilization_percentage" in logged
        assert cpu == (switch == "true")
