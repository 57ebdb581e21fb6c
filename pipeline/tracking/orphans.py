"""Runs whose own process could not end them, ended from outside: a run's process died
(SIGKILL, the out-of-memory killer), a Ray worker was lost, or a stage was killed between
recording a seed done and ending its run."""

from __future__ import annotations

import os
import socket

from ..core.paths import tracking_root
from .store import find_experiment, tracking_uri, user_tracking_uri


def process_tags() -> dict[str, str]:
    """The host and process that train a run: if that process dies unannounced (SIGKILL, the
    out-of-memory killer), the next training of the variant on this host ends the run."""
    return {"host": socket.gethostname(), "pid": str(os.getpid())}


def end_runs_of_dead_processes(experiment: str, variant: str) -> list[str]:
    """End KILLED (tag `failure=process died`) the runs of `variant` that are RUNNING on
    this host in a process that no longer exists; their names."""

    if user_tracking_uri() is None and not (tracking_root() / "mlflow.db").is_file():
        return []  # no store yet, so no run to end; and none is created here
    client, found = find_experiment(experiment)
    if found is None:
        return []
    host = socket.gethostname().replace("'", "")
    ended = []
    for run in client.search_runs(
        [found.experiment_id],
        filter_string=(
            f"tags.variant = '{variant}' and tags.host = '{host}' and attributes.status = 'RUNNING'"
        ),
    ):
        pid = run.data.tags.get("pid", "")
        if pid.isdigit() and not _alive(int(pid)):
            client.set_tag(run.info.run_id, "failure", "process died")
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_name)
    return ended


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def end_if_running(run_id: str, status: str) -> None:
    """End run `run_id` with `status` if it is still RUNNING (its process died first)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri())
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status)


def close_orphans(experiment: str, tag: str, value: str, status: str, failure: str) -> None:
    """End the runs tagged `tag=value` that are still RUNNING: their worker died without
    ending them. Tags each with `failure`."""
    client, found = find_experiment(experiment)
    if found is None:
        return
    for run in client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.{tag} = '{value}' and attributes.status = 'RUNNING'",
    ):
        client.set_tag(run.info.run_id, "failure", failure)
        client.set_terminated(run.info.run_id, status)
