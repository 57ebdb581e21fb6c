"""The run grid on Ray: one task per run, on a local Ray instance or on an existing cluster.

Each task trains one `RunSpec` as one MLflow run, in the store that `MLFLOW_TRACKING_URI`
names (on a cluster: a shared tracking server that also serves the artifacts), and returns
what the driver needs to write the study's outputs: the run's entry of `runs.json`, its rows
of `history.csv` and its weight files. The prepared splits travel once through Ray's object
store, so the workers need no shared file system.

A task that fails (an exception, its worker killed, its node lost) is recorded with its run
name and the reason, and the other tasks' results are kept. Tasks are not retried: a retry
would start a second MLflow run for the same (variant, seed).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Params
from .errors import ConfigError
from .prepare import Prepared
from .spec import RunSpec


@dataclass(frozen=True)
class Resources:
    """What each run asks Ray for. Fractions pack several small runs on one CPU or GPU."""

    cpus: float = 1.0
    gpus: float = 0.0

    @property
    def threads(self) -> int:
        """Torch threads per run: its whole CPUs, at least one."""
        return max(1, int(self.cpus))


@dataclass(frozen=True)
class Finished:
    run: dict[str, Any]  # its entry of runs.json
    history: list[dict[str, Any]]  # its rows of history.csv
    weights: dict[str, bytes]  # file name -> content, for models/<variant>/seed<k>/


@dataclass(frozen=True)
class Missing:
    """A run of the grid that did not finish, and why."""

    variant: str
    seed: int
    run_name: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "seed": self.seed, "run_name": self.run_name,
                "reason": self.reason}  # fmt: skip


def train_task(
    spec: RunSpec, prepared: Prepared, params: Params, tags: dict[str, str], threads: int
) -> Finished:
    """One run, inside a Ray worker."""
    import ray
    import torch

    from .train import data_hyperparameters, train_one
    from .trainer import DeviceData, resolve_device

    torch.set_num_threads(threads)
    data = DeviceData.of(prepared, resolve_device(params.train.device))
    where = {"worker_pid": str(os.getpid()), "ray_node": ray.get_runtime_context().get_node_id()}
    with tempfile.TemporaryDirectory() as tmp:
        run, history = train_one(
            spec, data, params, data_hyperparameters(prepared), Path(tmp), _quiet,
            extra_tags={**tags, **where},
        )  # fmt: skip
        weights = {path.name: path.read_bytes() for path in Path(tmp).iterdir()}
    return Finished(run, history, weights)


def _quiet(epoch: int, row: dict[str, float]) -> None:
    """No line per epoch from the workers: the driver prints one per finished run."""


def run_grid(
    specs: list[RunSpec],
    params: Params,
    prepared: Prepared,
    address: str | None,
    resources: Resources,
    tags: dict[str, str],
    on_done: Callable[[RunSpec, Finished | Missing], None],
) -> tuple[list[Finished], list[Missing]]:
    """Run every spec as a Ray task; return the finished runs and the missing ones.

    `address`: an existing cluster's (`ray start --head` prints it), or None for a local Ray
    instance on this machine's cores. `tags` go on every run (commit, study id, executor).
    """
    import ray

    from .tracking import ensure_experiment, launcher_run_id, tracking_uri

    # Created once here, so the workers find it; with the local store it gets its artifact
    # location under this root.
    ensure_experiment(params.mlflow.experiment)
    study_id = uuid.uuid4().hex
    tags = {**tags, "executor": "ray", "study_id": study_id}
    env = {"MLFLOW_TRACKING_URI": tracking_uri()}
    if launcher_run_id() is not None:  # under `mlflow run -e main`: the runs become its children
        env["MLFLOW_RUN_ID"] = launcher_run_id()
    runtime_env: dict[str, Any] = {"env_vars": env}
    if address is not None:
        # The cluster's workers run this very code, whatever their image holds.
        runtime_env["py_modules"] = [str(Path(__file__).parent)]
    local = {"include_dashboard": False} if address is None else {}
    # The workers' own output stays in Ray's logs; the driver prints one line per run.
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, **local)
    except ConnectionError as e:
        raise ConfigError(
            f"no Ray cluster answered at {address}: {e}. A cluster started with token "
            "authentication (`ray start`'s default since Ray 2.59) also needs RAY_AUTH_MODE=token "
            "and its token (`ray get-auth-token`, or RAY_AUTH_TOKEN) in this shell"
        ) from None
    finished: list[Finished] = []
    missing: list[Missing] = []
    try:
        task = ray.remote(max_retries=0)(train_task)
        data = ray.put(prepared)
        pending = {
            task.options(
                name=spec.run_name, num_cpus=resources.cpus, num_gpus=resources.gpus
            ).remote(spec, data, params, tags, resources.threads): spec
            for spec in specs
        }
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(ref)
                try:
                    outcome: Finished | Missing = ray.get(ref)
                    finished.append(outcome)
                except ray.exceptions.RayError as e:
                    outcome = Missing(spec.variant_name, spec.seed, spec.run_name, why(e))
                    missing.append(outcome)
                on_done(spec, outcome)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            close_orphans(params.mlflow.experiment, study_id, "KILLED")
            raise
        if missing:
            close_orphans(params.mlflow.experiment, study_id, "FAILED")
    finally:
        ray.shutdown()
    return finished, missing


def why(error: Exception) -> str:
    """One line on why a task failed."""
    import ray

    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return "its worker process died (killed, or out of memory) before the run finished"
    if isinstance(error, ray.exceptions.TaskCancelledError):
        return "cancelled"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def close_orphans(experiment: str, study_id: str, status: str) -> None:
    """End the runs of this study still RUNNING: their worker died without ending them."""
    import mlflow

    from .tracking import tracking_uri

    client = mlflow.MlflowClient(tracking_uri())
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    for run in client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.study_id = '{study_id}' and attributes.status = 'RUNNING'",
    ):
        client.set_tag(run.info.run_id, "failure", "worker lost")
        client.set_terminated(run.info.run_id, status)
