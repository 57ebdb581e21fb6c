"""A run is never left RUNNING by a signal that arrives while it is being created."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import mlflow
import pytest

from pipeline import tracking


def test_a_signal_during_run_creation_ends_the_run_killed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    tracking.user_tracking_uri.cache_clear()
    tracking.launcher_run_id.cache_clear()
    real_start = mlflow.start_run

    def start_then_ctrl_c(*args, **kwargs):
        run = real_start(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # lands before the caller can guard the run
        return run

    monkeypatch.setattr(mlflow, "start_run", start_then_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt), tracking.tracked_run("signals", "interrupted", {}):
            pytest.fail("the held signal must be raised before the body runs")
        [run] = mlflow.MlflowClient().search_runs(
            [mlflow.get_experiment_by_name("signals").experiment_id]
        )
        assert run.info.status == "KILLED"
    finally:
        tracking.user_tracking_uri.cache_clear()
        tracking.launcher_run_id.cache_clear()
