"""A training started in a process of its own and interrupted once it has printed given lines,
and the runs it leaves in its repository's store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from tests.support.repo import TINY_PARAMS, Runner, command_env, make_runner, scratch_repo

PY = sys.executable
# Long enough to interrupt mid-run with a second or more to spare on a busy machine: the tests
# signal at epoch 5 or 8, and an epoch takes ~30 ms with its checkpoint (Intel Xeon, 2 cores).
# Short enough that a run and its resumption take seconds.
EPOCHS = 60
LONG = json.loads(json.dumps(TINY_PARAMS))
LONG["train"].update(epochs=EPOCHS, batch_size=32, checkpoint_every=1, seeds=[0])


def client(repo: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def all_runs(repo: Path) -> list:
    c = client(repo)
    exp = c.get_experiment_by_name(TINY_PARAMS["mlflow"]["experiment"])
    return [] if exp is None else c.search_runs([exp.experiment_id])


def training_started(
    folder: Path, params: dict, variant: str
) -> tuple[Path, Runner, subprocess.Popen]:
    """A scratch repository in `folder` with `params` and its data prepared, and the train
    stage of `variant` started there in a process of its own: the repository, a runner in it,
    and the stage's process."""
    repo = scratch_repo(folder, params)
    run = make_runner(repo)
    run(PY, "-m", "pipeline", "prepare")
    return repo, run, start(repo, PY, "-m", "pipeline", "train", "--variant", variant)


def trained_uninterrupted(folder: Path, params: dict, variant: str) -> Path:
    """The same study trained without an interrupt, in a scratch repository in `folder`."""
    repo = scratch_repo(folder, params)
    make_runner(repo)(PY, "-m", "pipeline", "prepare")
    make_runner(repo)(PY, "-m", "pipeline", "train", "--variant", variant)
    return repo


def start(repo: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        list(args),
        cwd=repo,
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=answer_ctrl_c,
    )


def answer_ctrl_c() -> None:
    """SIGINT as in a terminal: a job started in the background of a script inherits it
    ignored, and Ctrl-C would then reach nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_after(
    process: subprocess.Popen, markers: list[str], sig: int, group: bool = True
) -> str:
    """Send `sig` to the process group (or, `group=False`, the process alone) once every one
    of `markers` has shown in its output; return the whole output once it has ended."""
    seen, waiting = [], set(markers)
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        waiting -= {m for m in waiting if m in line}
        if not waiting:
            break
    else:
        raise AssertionError(f"the output ended before {sorted(waiting)}:\n{''.join(seen)}")
    (os.killpg if group else os.kill)(process.pid, sig)
    seen.append(process.stdout.read())
    process.wait(timeout=120)
    return "".join(seen)
