"""A run is never left RUNNING by a signal that arrives while it is being created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import command_env

# Run in a process of its own: signals reach the main thread, as in the CLI (test workers may
# run tests elsewhere). A SIGINT lands right after MLflow has created the run, before the
# caller could guard it.
SCRIPT = """
import os, signal, mlflow
from pipeline import tracking
real_start = mlflow.start_run
def start_then_ctrl_c(*args, **kwargs):
    run = real_start(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)
    return run
mlflow.start_run = start_then_ctrl_c
try:
    with tracking.tracked_run("signals", "interrupted", {}):
        print("body ran")
except KeyboardInterrupt:
    print("interrupted")
exp = mlflow.get_experiment_by_name("signals")
[run] = mlflow.MlflowClient().search_runs([exp.experiment_id])
print(run.info.status)
"""


def test_a_signal_during_run_creation_ends_the_run_killed(tmp_path: Path) -> None:
    env = command_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=Path(__file__).parents[1],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["interrupted", "KILLED"], out.stdout + out.stderr
