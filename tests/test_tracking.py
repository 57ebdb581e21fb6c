"""A run is never left RUNNING, nor an MLflow call cut in two, by Ctrl-C at any moment of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import command_env

# Run in a process of its own: signals reach the main thread, as in the CLI (test workers may
# run tests elsewhere). A SIGINT lands at one moment of a run's life: right after MLflow has
# created it, before its parameters are written, or before its end is recorded.
# The signal goes to the main thread, or to another thread of the process, where the kernel
# may deliver it when the main thread holds it (MLflow and Ray run threads of their own); or
# SIGINT is ignored, as in a job started in the background of a shell.
SCRIPT = """
import signal, sys, threading, time, mlflow
from pipeline import signals, tracking
moment, receiver = sys.argv[1:3]
signal.signal(signal.SIGINT,
              signal.SIG_IGN if receiver == "ignored" else signal.default_int_handler)
other = threading.Thread(target=time.sleep, args=(60,), daemon=True)
other.start()

def ctrl_c():
    target = other if receiver == "other" else threading.main_thread()
    signal.pthread_kill(target.ident, signal.SIGINT)
    if receiver == "ignored":
        return
    # Until the main thread has run the Python-level handler, which a hold records.
    deadline = time.monotonic() + 30
    while not any(signals._holds) and time.monotonic() < deadline:
        time.sleep(0.01)

owner, name, before = {
    "creating": (mlflow, "start_run", False),
    "logging": (mlflow, "log_params", True),
    "ending": (mlflow.MlflowClient, "set_terminated", True),
}[moment]
real = getattr(owner, name)
def call_with_ctrl_c(*args, **kwargs):
    setattr(owner, name, real)  # once
    if before:
        ctrl_c()
    result = real(*args, **kwargs)
    if not before:
        ctrl_c()
    return result
setattr(owner, name, call_with_ctrl_c)

try:
    with tracking.tracked_run("signals", "interrupted", {}):
        mlflow.log_params({"a": 1, "b": 2})
        signals.stop_if_signalled()
        print("body ran")
except KeyboardInterrupt:
    print("interrupted")
exp = mlflow.get_experiment_by_name("signals")
[run] = mlflow.MlflowClient().search_runs([exp.experiment_id])
print(run.info.status, f"params={len(run.data.params)}")
"""


@pytest.mark.parametrize(
    ("moment", "receiver", "expected"),
    [
        # The body never starts.
        ("creating", "main", "interrupted KILLED params=0"),
        ("creating", "other", "interrupted KILLED params=0"),
        # The parameters are written whole, and the body stops at its next safe point.
        ("logging", "main", "interrupted KILLED params=2"),
        ("logging", "other", "interrupted KILLED params=2"),
        # The body had finished: the run ends FINISHED, then the interrupt goes on.
        ("ending", "main", "body ran interrupted FINISHED params=2"),
        # An ignored signal stays ignored.
        ("logging", "ignored", "body ran FINISHED params=2"),
    ],
)
def test_ctrl_c_at_any_moment_of_a_run_leaves_it_ended(
    tmp_path: Path, moment: str, receiver: str, expected: str
) -> None:
    env = command_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = subprocess.run([sys.executable, "-c", SCRIPT, moment, receiver],
                         cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == expected.split(), out.stdout + out.stderr


# The body hangs with no safe point to stop at, as a call to a tracking server that does not
# answer; Ctrl-C is pressed twice.
STUCK = """
import signal, threading, time, mlflow
from pipeline import tracking
signal.signal(signal.SIGINT, signal.default_int_handler)
main = threading.main_thread()
opened = threading.Event()
def press_twice():
    opened.wait()
    for _ in range(2):
        time.sleep(0.5)
        signal.pthread_kill(main.ident, signal.SIGINT)
threading.Thread(target=press_twice, daemon=True).start()
try:
    with tracking.tracked_run("signals", "stuck", {}):
        started = time.monotonic()
        opened.set()
        time.sleep(60)
        print("body ran")
except KeyboardInterrupt:
    print("interrupted")
print("in time" if time.monotonic() - started < 30 else "too late")
exp = mlflow.get_experiment_by_name("signals")
[run] = mlflow.MlflowClient().search_runs([exp.experiment_id])
print(run.info.status)
"""


def test_ctrl_c_pressed_twice_stops_a_run_that_hangs(tmp_path: Path) -> None:
    env = command_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = subprocess.run([sys.executable, "-c", STUCK], cwd=Path(__file__).parents[1], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["interrupted", "in", "time", "KILLED"], out.stdout + out.stderr


# A forked worker's handler stops it once and then ignores both signals, so that its clean-up
# (ending its run KILLED) is not cut short by the SIGTERM its parent forwards.
TWICE_IN_A_WORKER = """
import signal
from pipeline import signals
from pipeline.side_by_side import _interrupt_once
signal.signal(signal.SIGINT, _interrupt_once)
signal.signal(signal.SIGTERM, _interrupt_once)
try:
    with signals.signals_held():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        print("held")
except KeyboardInterrupt:
    print("stopped")
print(*(signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM)))
"""


def test_a_handler_that_ignores_signals_from_then_on_stays_so_after_the_hold() -> None:
    out = subprocess.run([sys.executable, "-c", TWICE_IN_A_WORKER],
                         cwd=Path(__file__).parents[1], env=command_env(), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["stopped", "True", "True"], out.stdout + out.stderr


# One SIGTERM can arrive more than once: the kernel sends a worker's parent-death signal once
# per thread of the worker. The second lands while the run is being ended KILLED.
SIGTERM_TWICE = """
import signal, mlflow
from pipeline import signals, tracking
from pipeline.side_by_side import _interrupt_once
signal.signal(signal.SIGTERM, _interrupt_once)
real = mlflow.MlflowClient.set_terminated
def set_terminated_after_sigterm(*args, **kwargs):
    signal.raise_signal(signal.SIGTERM)
    return real(*args, **kwargs)
mlflow.MlflowClient.set_terminated = set_terminated_after_sigterm
try:
    with tracking.tracked_run("signals", "sigterm-twice", {}):
        signal.raise_signal(signal.SIGTERM)
        signals.stop_if_signalled()
except KeyboardInterrupt:
    print("interrupted")
exp = mlflow.get_experiment_by_name("signals")
[run] = mlflow.MlflowClient().search_runs([exp.experiment_id])
print(run.info.status)
"""


def test_a_repeated_sigterm_does_not_cut_the_end_of_a_run_short(tmp_path: Path) -> None:
    env = command_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = subprocess.run([sys.executable, "-c", SIGTERM_TWICE], cwd=Path(__file__).parents[1],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["interrupted", "KILLED"], out.stdout + out.stderr
