"""MLflow: where runs are stored, how a run is started or joined, and what it records.

Store: `MLFLOW_TRACKING_URI` when the user sets it; otherwise `sqlite:///<root>/mlflow.db`
with artifacts under `<root>/mlruns/`, where <root> is `DVC_ROOT` inside a DVC experiment
(which runs in a temporary copy of the repository) and the working directory otherwise.

Under `mlflow run`, MLflow has already created the run (MLFLOW_RUN_ID) and logged the entry
point's parameters as strings; the code joins that run and never logs those keys again.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .paths import tracking_root

MLFLOW_RUN_ID = "MLFLOW_RUN_ID"


@functools.cache
def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it, read before MLflow itself writes that variable."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def tracking_uri() -> str:
    return user_tracking_uri() or f"sqlite:///{tracking_root() / 'mlflow.db'}"


def ensure_experiment(name: str) -> str:
    """Point MLflow at the store and return the experiment's id, creating it when missing.

    With the default local store the experiment gets an explicit artifact location under the
    root, so artifacts of a DVC experiment run in a temporary copy land in the real `mlruns/`.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    location = None
    if user_tracking_uri() is None:
        folder = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        location = (tracking_root() / "mlruns" / folder).as_uri()
    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it in between
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def git_commit() -> str:
    """The commit of the code that runs (of the real root under DVC), or 'unknown'."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path.cwd(),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def context_tags() -> dict[str, str]:
    """Where a run comes from: commit, and the DVC stage and experiment when under DVC."""
    commit = git_commit()
    tags = {"git_commit": commit, "mlflow.source.git.commit": commit}
    for env, tag in (("DVC_STAGE", "dvc_stage"), ("DVC_EXP_NAME", "dvc_exp_name")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


def joined_run_id() -> str | None:
    """The run `mlflow run` started for this process, if any."""
    return os.environ.get(MLFLOW_RUN_ID) or None


@contextmanager
def tracked_run(experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[Any]:
    """Start a run (or join the one `mlflow run` started); end it FINISHED, FAILED or KILLED."""
    import mlflow

    experiment_id = None if joined_run_id() else ensure_experiment(experiment)
    if joined_run_id():
        mlflow.set_tracking_uri(tracking_uri())
    run = mlflow.start_run(
        run_id=joined_run_id(),
        experiment_id=experiment_id,
        run_name=None if joined_run_id() else run_name,
        tags=tags,
    )
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def log_params_once(params: dict[str, Any]) -> None:
    """Log params, leaving out keys the run already has (as `mlflow run` logs its own)."""
    import mlflow

    run = mlflow.active_run()
    existing = set(mlflow.MlflowClient().get_run(run.info.run_id).data.params) if run else set()
    fresh = {k: _param_value(v) for k, v in params.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh)


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_param_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)
