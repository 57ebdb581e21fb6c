"""MLflow: where runs are stored, which experiment and context they belong to, what they
record (params, finished runs), and the UI. How runs are opened and ended: `lifecycle`.

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
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..core.errors import ConfigError, DataError
from ..core.paths import tracking_root

MLFLOW_RUN_ID = "MLFLOW_RUN_ID"


@functools.cache
def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it, read before MLflow itself writes that variable."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


# The stores MLflow can track to (a database scheme may name its driver: postgresql+psycopg).
SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks")


def check_tracking_uri() -> None:
    """MLFLOW_TRACKING_URI names a store MLflow knows, or a ConfigError says so."""
    uri = user_tracking_uri()
    scheme = urlparse(uri).scheme.split("+")[0] if uri else ""
    if scheme and scheme not in SCHEMES:
        raise ConfigError(
            f"MLFLOW_TRACKING_URI {uri!r}: MLflow cannot track to a {scheme!r} store; use "
            "http(s)://HOST:PORT (a tracking server), sqlite:///FILE or postgresql://..."
        )


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
    # Several trainings may start at once (`dvc queue start -j 4`): `find_experiment` locks.
    client, experiment = find_experiment(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        # The kind makes the MLflow UI open the experiment on its training-runs table.
        kind = {"mlflow.experimentKind": "custom_model_development"}
        return client.create_experiment(name, artifact_location=location, tags=kind)
    except MlflowException:  # another process created it in between
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def find_experiment(name: str) -> tuple[Any, Any]:
    """(a client of the study's store, its experiment `name` or None). The first touch of a new
    SQLite store creates its schema, which must not run twice side by side: under the lock."""
    import mlflow

    with store_lock():
        client = mlflow.MlflowClient(tracking_uri())
        return client, client.get_experiment_by_name(name)


def store_lock() -> AbstractContextManager[object]:
    """A lock across processes for the default SQLite store; nothing for a tracking server."""
    if user_tracking_uri() is not None and not user_tracking_uri().startswith("sqlite:"):
        return nullcontext()
    from filelock import FileLock

    return FileLock(str(tracking_root() / ".mlflow.db.lock"), timeout=300)


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


@functools.cache
def launcher_run_id() -> str | None:
    """The run `mlflow run` started for this process, if any (read once: MLflow deletes the
    variable the first time it resumes that run)."""
    return os.environ.get(MLFLOW_RUN_ID) or None


def mark_launcher_failed(reason: str) -> None:
    """Under `mlflow run`, record why the command failed before it trained anything."""
    launcher = launcher_run_id()
    if launcher is None:
        return
    import mlflow

    client = mlflow.MlflowClient(tracking_uri())
    client.set_tag(launcher, "error", reason[:5000])
    client.set_terminated(launcher, "FAILED")


def log_params_once(run_id: str, params: dict[str, Any]) -> None:
    """Log params, leaving out keys the run already has (as `mlflow run` logs its own)."""
    import mlflow

    existing = set(mlflow.MlflowClient().get_run(run_id).data.params)
    fresh = {k: _param_value(v) for k, v in params.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh, run_id=run_id)


def log_dataset(run_id: str, dataset: Mapping[str, str]) -> None:
    """The run's data as an MLflow dataset input (context `training`): the UI's Dataset
    column, so that runs on different data cannot be taken for each other."""
    import mlflow
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    entry = DatasetInput(Dataset(**dataset), tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])
    client = mlflow.MlflowClient()
    try:
        client.log_inputs(run_id, datasets=[entry])
    except mlflow.MlflowException as e:
        # The store looks the dataset up and then inserts it, in one transaction: runs that
        # start together (Ray workers) can all miss it and all insert; one commits, the others
        # fail on the unique key and roll back whole. Again, the dataset is there to find.
        if not _lost_an_insert_race(e):
            raise
        client.log_inputs(run_id, datasets=[entry])


def _lost_an_insert_race(error: Exception) -> bool:
    """PostgreSQL's, SQLite's and MySQL's words for a unique key already taken."""
    text = str(error).lower()
    return "unique constraint" in text or "duplicate key" in text or "duplicate entry" in text


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_param_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def finished_runs(experiment: str) -> list[Any]:
    """Every FINISHED run of `experiment`, all pages of the search."""
    store = tracking_root() / "mlflow.db"
    if user_tracking_uri() is None and not store.is_file():  # reading must not create one
        raise DataError(f"no MLflow store at {store}: nothing has been tracked here yet")

    client, exp = find_experiment(experiment)
    if exp is None:
        raise DataError(f"no MLflow experiment {experiment!r} in {tracking_uri()}")
    runs, token = [], None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            "attributes.status = 'FINISHED'",
            max_results=1000,
            page_token=token,
        )
        runs += page
        token = page.token
        if not token:
            return runs


def tag_runs(tags: Mapping[str, Mapping[str, str]]) -> int:
    """Set each run's tags (run id → tag → value) in the store; runs it does not hold, or
    holds deleted, are left alone. How many were tagged."""
    from mlflow.entities import RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client, done = MlflowClient(tracking_uri()), 0
    for run_id, values in tags.items():
        try:
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in values.items()])
        except MlflowException:
            continue
        done += 1
    return done


def serve_ui(host: str, port: int) -> int:
    """Run the MLflow UI against this store until it ends (Ctrl-C: 130).

    One person reads it, so one request worker (MLflow starts four). MLflow's job runner,
    which serves its GenAI features (scorers, prompt optimisation, trace evaluation) and
    starts eight more processes that keep polling, stays off unless the user turns it on:
    a training study has no such jobs. The UI answers in less than half the time and CPU
    (docs/performance.md)."""
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri()]
    command += ["--host", host, "--port", str(port), "--workers", "1"]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130
