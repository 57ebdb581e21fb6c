"""A run is never left RUNNING by a signal that arrives while it is being created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import command_env

# Run in a process of its own: signals reach the main thread, as in the CLI (test workers may
# run tests elsewhere). A SIGINT lands right after MLflow has created the run, before the
# caller could guard it.
# The signal goes to the main thread, or to another thread of the process, where the kernel
# may deliver it when the main thread holds it (MLflow and Ray run threads of their own).
SCRIPT = """
import os, signal, sys, threading, time, mlflow
from pipeline import tracking
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, not a background job
other = threading.Thread(target=time.sleep, args=(60,), daemon=True)
other.start()
real_start = mlflow.start_run
def start_then_ctrl_c(*args, **kwargs):
    run = real_start(*args, **kwargs)
    target = threading.main_thread() if sys.argv[1] == "main" else other
    signal.pthread_kill(target.ident, signal.SIGINT)
    time.sleep(0.2)  # time for the receiving thread to run the signal's C handler
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


@pytest.mark.parametrize("receiver", ["main", "other"])
def test_a_signal_during_run_creation_ends_the_run_killed(tmp_path: Path, receiver: str) -> None:
    env = command_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = subprocess.run([sys.executable, "-c", SCRIPT, receiver], cwd=Path(__file__).parents[1],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["interrupted", "KILLED"], out.stdout + out.stderr
