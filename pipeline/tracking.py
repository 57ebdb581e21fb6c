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
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigError, DataError
from .paths import tracking_root
from .signals import signals_held, stop_if_signalled

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
    # Several trainings may start at once (`dvc queue start -j 4`): the first touch of a new
    # SQLite store creates its schema, which must not run twice side by side.
    with store_lock():
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(name)
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


@contextmanager
def tracked_run(
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    join: bool = True,
    resume_run_id: str | None = None,
) -> Iterator[Any]:
    """A run that ends FINISHED, FAILED (an error) or KILLED (Ctrl-C).

    Outside `mlflow run`: a new run in `experiment`. Under `mlflow run`: with `join`, the run
    MLflow started (named here, since MLflow leaves it unnamed); without, a child of it in the
    same experiment, so a whole study started by `mlflow run` stays grouped under one parent.
    With `resume_run_id`: that run again (a run continued from its checkpoint).
    """
    import mlflow

    # Per-epoch metrics are queued (log_metrics(synchronous=False)). MLflow's queue worker
    # otherwise polls with a 1 s timeout, and ending a run waits out that poll: ~0.6 s a run.
    # With a buffer it waits on an event that ending the run sets at once, and writes what
    # came in meanwhile as one batch: every 5 s, the store's CPU cost per run drops by ~40 %.
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "5")
    launcher = launcher_run_id()
    mlflow.set_tracking_uri(tracking_uri())
    run_id, experiment_id = None, None
    if resume_run_id is not None:
        run_id = resume_run_id
    elif launcher is None:
        experiment_id = ensure_experiment(experiment)
    elif join:
        run_id = launcher
    # Ctrl-C and SIGTERM are held from before the run is created until it has ended: a
    # KeyboardInterrupt inside an MLflow call would leave the run RUNNING. The body stops at
    # its next safe point (training asks `stop_requested` between mini-batches); once the run
    # has ended, a held signal goes on to its usual handler.
    with signals_held():
        if launcher is not None and not join and resume_run_id is None:
            client = mlflow.MlflowClient()
            parent = client.get_run(launcher)
            child = client.create_run(
                parent.info.experiment_id,
                run_name=run_name,
                tags={"mlflow.parentRunId": launcher},
            )
            run_id = child.info.run_id
        run = mlflow.start_run(
            run_id=run_id,
            experiment_id=experiment_id,
            run_name=run_name,
            tags=tags,
        )
        try:
            stop_if_signalled()  # a signal while the run was created: the body does not start
            yield run
        except KeyboardInterrupt:
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        else:
            mlflow.end_run(status="FINISHED")


class OpenRuns:
    """Runs open together (the seeds of a stack), each ended exactly once. An error that
    belongs to one of them (`blame`) ends it FAILED and the others KILLED; an error of the
    whole stack ends every open run FAILED; Ctrl-C ends them KILLED."""

    def __init__(self, client: Any):
        self.client = client
        self.ids: list[str] = []
        self.ended: set[str] = set()
        self.blamed: str | None = None

    def blame(self, run_id: str) -> None:
        self.blamed = run_id

    def end(self, run_id: str, status: str) -> None:
        if run_id not in self.ended:
            self.client.set_terminated(run_id, status)
            self.ended.add(run_id)

    @contextmanager
    def finishing(self, run_id: str) -> Iterator[None]:
        """Run `run_id` as MLflow's active run, for what is logged at its end (a logged model
        links to the active run); it then ends FINISHED, or with the error."""
        import mlflow

        self.blamed = run_id
        mlflow.start_run(run_id=run_id)
        try:
            yield
        except KeyboardInterrupt:
            mlflow.end_run(status="KILLED")
            self.ended.add(run_id)
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            self.ended.add(run_id)
            raise
        mlflow.end_run(status="FINISHED")
        self.ended.add(run_id)
        self.blamed = None


@contextmanager
def tracked_runs(
    experiment: str,
    openings: list[tuple[str, dict[str, str], str | None]],
    join: bool = False,
) -> Iterator[OpenRuns]:
    """Runs open at once, one per (run name, tags, run id to resume or None); each ends
    FINISHED, FAILED (an error) or KILLED (Ctrl-C), as `tracked_run` ends one run.

    Outside `mlflow run`: new runs in `experiment`. Under `mlflow run`: with `join`, the one
    run MLflow started; without, children of it. A run id given: that run again (a run
    continued from its checkpoint).
    """
    import mlflow

    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "5")  # see tracked_run
    launcher = launcher_run_id()
    if join and (launcher is None or len(openings) != 1):
        raise ValueError("only one run joins the run `mlflow run` started")
    mlflow.set_tracking_uri(tracking_uri())
    experiment_id = None
    if launcher is None and any(resume is None for *_, resume in openings):
        experiment_id = ensure_experiment(experiment)
    with signals_held():  # as in tracked_run: from before the first run until the last ends
        runs = OpenRuns(mlflow.MlflowClient())
        try:
            for name, tags, resume in openings:
                if resume is None and join:
                    resume = launcher
                runs.ids.append(_open_run(runs.client, experiment_id, name, tags, resume))
            stop_if_signalled()
            yield runs
        except KeyboardInterrupt:
            for run_id in runs.ids:
                runs.end(run_id, "KILLED")
            raise
        except BaseException:
            for run_id in runs.ids:
                runs.end(run_id, "FAILED" if runs.blamed in (None, run_id) else "KILLED")
            raise
        for run_id in runs.ids:
            runs.end(run_id, "FINISHED")


def _open_run(
    client: Any, experiment_id: str | None, name: str, tags: dict[str, str], run_id: str | None
) -> str:
    """What `mlflow.start_run` does, without making the run the active one."""
    from mlflow.entities import RunTag
    from mlflow.tracking.context import registry

    if run_id is not None:  # continued, or the run `mlflow run` started
        client.update_run(run_id, status="RUNNING", name=name)
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        return run_id
    launcher = launcher_run_id()
    if launcher is not None:  # a child of the run `mlflow run` started
        experiment_id = client.get_run(launcher).info.experiment_id
        tags = {**tags, "mlflow.parentRunId": launcher}
    tags = registry.resolve_tags({**tags, "mlflow.runName": name})
    return client.create_run(experiment_id, tags=tags, run_name=name).info.run_id


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


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_param_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def finished_runs(experiment: str) -> list[Any]:
    """Every FINISHED run of `experiment`, all pages of the search."""
    import mlflow

    store = tracking_root() / "mlflow.db"
    if user_tracking_uri() is None and not store.is_file():  # reading must not create one
        raise DataError(f"no MLflow store at {store}: nothing has been tracked here yet")

    client = mlflow.MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(experiment)
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


def next_steps(report: Path) -> str:
    """Where the report is, and how to open the MLflow UI on this store."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        ui_hint = f"MLflow UI: open {uri} (the tracking server serves it)"
    else:
        ui_hint = (
            f"MLflow UI: python -m pipeline ui  (or: make ui; mlflow ui --backend-store-uri "
            f"{uri} --host 127.0.0.1), then open http://127.0.0.1:5000"
        )
    return f"\nReport: {report}\n{ui_hint}"


def serve_ui(host: str, port: int) -> int:
    """Run the MLflow UI against this store until it ends (Ctrl-C: 130)."""
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri()]
    try:
        return subprocess.call([*command, "--host", host, "--port", str(port)])
    except KeyboardInterrupt:
        return 130
