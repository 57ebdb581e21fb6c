"""A run is never left RUNNING, nor an MLflow call cut in two, by Ctrl-C at any moment of it:
programs that open runs (`tracking.lifecycle`) in a process of their own, signalled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.repo import REPO, command_env

pytestmark = pytest.mark.e2e

PROGRAMS = REPO / "tests" / "support" / "programs"


def run_program(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python tests/support/programs/NAME.py ARGS` from the repository root, in a process of its
    own: signals reach its main thread, as in the CLI (test workers may run tests elsewhere). It
    imports `pipeline` from this checkout, whatever the editable install points at."""
    environment = command_env(**env)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, str(PROGRAMS / f"{name}.py"), *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


# A SIGINT lands at one moment of a run's life: right after MLflow has created it, before its
# parameters are written, or before its end is recorded. It goes to the main thread, or to
# another thread of the process, where the kernel may deliver it when the main thread holds it
# (MLflow and Ray run threads of their own); or SIGINT is ignored, as in a job started in the
# background of a shell.
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
    out = run_program(
        "ctrl_c_at_a_moment",
        moment,
        receiver,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == expected.split(), out.stdout + out.stderr


# The body hangs with no safe point to stop at, as a call to a tracking server that does not
# answer; Ctrl-C is pressed twice.
def test_ctrl_c_pressed_twice_stops_a_run_that_hangs(tmp_path: Path) -> None:
    out = run_program(
        "ctrl_c_twice_while_stuck", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["interrupted", "in", "time", "KILLED"], out.stdout + out.stderr


# A scheduler may send SIGTERM more than once. The second lands while the run is being ended
# KILLED.
def test_a_repeated_sigterm_does_not_cut_the_end_of_a_run_short(tmp_path: Path) -> None:
    out = run_program(
        "sigterm_twice_while_ending", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["interrupted", "KILLED"], out.stdout + out.stderr
