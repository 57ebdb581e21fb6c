"""How MLflow runs are opened (started, joined or resumed) and ended: one run (`tracked_run`)
or several at once, the seeds of a stack (`tracked_runs`). Each ends FINISHED, FAILED or
KILLED, never RUNNING: Ctrl-C and SIGTERM are held while a run is open.

Under `mlflow run`, MLflow has already created the run (MLFLOW_RUN_ID): the code joins it, or
opens its runs as children of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.signals import signals_held, stop_if_signalled
from .store import ensure_experiment, launcher_run_id, tracking_uri


@contextmanager
def tracked_run(
    experiment: str, run_name: str, tags: dict[str, str], join: bool = True
) -> Iterator[Any]:
    """One run, MLflow's active run for the block, that ends FINISHED, FAILED (an error) or
    KILLED (Ctrl-C): `tracked_runs` with one run.

    Outside `mlflow run`: a new run in `experiment`. Under `mlflow run`: with `join`, the run
    MLflow started (named here, since MLflow leaves it unnamed); without, a child of it in the
    same experiment, so a whole study started by `mlflow run` stays grouped under one parent.
    """
    import mlflow

    join = join and launcher_run_id() is not None
    with tracked_runs(experiment, [(run_name, tags, None)], join) as runs:
        [run_id] = runs.ids
        with runs.finishing(run_id):
            stop_if_signalled()  # a signal while the run was made active: the body does not start
            yield mlflow.active_run()


class OpenRuns:
    """Runs open together (the seeds of a stack), each ended exactly once. An error that
    belongs to one of them (`blame`) ends it FAILED and the others KILLED; an error of the
    whole stack ends every open run FAILED; Ctrl-C ends them KILLED."""

    def __init__(self, client: Any):
        self.client = client
        self.ids: list[str] = []
        self.ended: set[str] = set()
        self.blamed: str | None = None
        self.monitors: dict[str, Any] = {}

    def open(self, run_id: str) -> None:
        """Count `run_id` among the open runs; with MLflow's own switch on
        (MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true), log the machine's CPU, memory and GPU to
        it while it is open (every MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL s, default 10), for
        people who compare cost as well as gap."""
        from mlflow import environment_variables as env

        self.ids.append(run_id)
        if env.MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get():
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(
                run_id,
                sampling_interval=env.MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL.get() or 10,
                samples_before_logging=env.MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING.get() or 1,
                resume_logging=True,
            )
            monitor.start()
            self.monitors[run_id] = monitor

    def blame(self, run_id: str) -> None:
        self.blamed = run_id

    def end(self, run_id: str, status: str) -> None:
        if run_id not in self.ended:
            if run_id in self.monitors:
                self.monitors.pop(run_id).finish()
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

    # Per-epoch metrics are queued (synchronous=False). MLflow's queue worker otherwise polls
    # with a 1 s timeout, and ending a run waits out that poll: ~0.6 s a run. With a buffer it
    # waits on an event that ending the run sets at once.
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "5")
    launcher = launcher_run_id()
    if join and (launcher is None or len(openings) != 1):
        raise ValueError("only one run joins the run `mlflow run` started")
    mlflow.set_tracking_uri(tracking_uri())
    experiment_id = None
    if launcher is None and any(resume is None for *_, resume in openings):
        experiment_id = ensure_experiment(experiment)
    # Ctrl-C and SIGTERM are held from before the first run is created until the last has
    # ended: a KeyboardInterrupt inside an MLflow call would leave a run RUNNING. The body
    # stops at its next safe point (training asks `stop_requested` between mini-batches); once
    # the runs have ended, a held signal goes on to its usual handler.
    with signals_held():
        runs = OpenRuns(mlflow.MlflowClient())
        try:
            for name, tags, resume in openings:
                if resume is None and join:
                    resume = launcher
                runs.open(_open_run(runs.client, experiment_id, name, tags, resume))
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
