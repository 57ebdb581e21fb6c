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
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Params
from .errors import ConfigError, TrainingDiverged
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
    """A run of the grid that did not finish, and why. `diverged`: its loss became NaN or
    infinite, a result about the variant (the report gives it no verdict); otherwise the run
    was lost (worker or node died, an error), which says nothing about the variant."""

    variant: str
    seed: int
    run_name: str
    reason: str
    diverged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "seed": self.seed, "run_name": self.run_name,
                "reason": self.reason, "diverged": self.diverged}  # fmt: skip


def train_task(
    spec: RunSpec, prepared: Prepared, params: Params, tags: dict[str, str], threads: int
) -> Finished:
    """One run, inside a Ray worker."""
    import ray
    import torch

    from .train import data_hyperparameters, run_record, tracked_training
    from .trainer import DeviceData, resolve_device

    torch.set_num_threads(threads)
    data = DeviceData.of(prepared, resolve_device(params.train.device))
    where = {"worker_pid": str(os.getpid()), "ray_node": ray.get_runtime_context().get_node_id()}
    with tempfile.TemporaryDirectory() as tmp:
        result, run_id = tracked_training(
            spec, data, params, data_hyperparameters(prepared), Path(tmp), _quiet,
            extra_tags={**tags, **where},
        )  # fmt: skip
        weights = {path.name: path.read_bytes() for path in Path(tmp).iterdir()}
    return Finished(*run_record(spec, result, run_id), weights)


def _quiet(epoch: int, row: dict[str, float]) -> None:
    """No line per epoch from the workers: the driver prints one per finished run."""


@contextmanager
def ray_session(address: str | None, resources: Resources, launcher: str | None) -> Iterator[None]:
    """Connected to Ray (a new local instance when `address` is None) for the block.

    Fails with one line where no cluster answers or none of its nodes could ever run a run
    (a task asking for more than any node has would wait forever).
    """
    import ray

    from .tracking import tracking_uri

    env = {"MLFLOW_TRACKING_URI": tracking_uri()}
    if launcher is not None:  # under `mlflow run -e main`: the runs become its children
        env["MLFLOW_RUN_ID"] = launcher
    if resources.gpus == 0:  # Ray no longer hides the GPUs from tasks that asked for none
        env["CUDA_VISIBLE_DEVICES"] = ""
    runtime_env: dict[str, Any] = {"env_vars": env}
    if address is not None:
        # The cluster's workers run this very code, whatever their image holds.
        runtime_env["py_modules"] = [str(Path(__file__).parent)]
    local = {"include_dashboard": False} if address is None else {}
    # ray.init replaces the SIGTERM handler with one that exits at once; the CLI's own ends
    # the open runs KILLED first.
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        # The workers' own output stays in Ray's logs; the driver prints one line per run.
        # "local": a new instance even where `ray start` runs one on this machine already.
        ray.init(address=address or "local", runtime_env=runtime_env, log_to_driver=False,
                 **local)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (
            ". A cluster started with token authentication (`ray start`'s default since Ray "
            "2.59) also needs RAY_AUTH_MODE=token and its token (`ray get-auth-token`, or "
            "RAY_AUTH_TOKEN) here"
        )
        where = address or "a new local instance"
        raise ConfigError(f"Ray at {where}: {first}{hint if address else ''}") from None
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    try:
        check_fits(resources)
        yield
    finally:
        ray.shutdown()


def check_fits(resources: Resources) -> None:
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for name, flag, wanted in (("CPU", "--cpus-per-run", resources.cpus),
                               ("GPU", "--gpus-per-run", resources.gpus)):  # fmt: skip
        largest = max((n.get(name, 0.0) for n in nodes), default=0.0)
        if wanted > largest:
            raise ConfigError(
                f"{flag} {wanted:g}: no node of the Ray cluster has that many {name}s (the "
                f"largest has {largest:g}), so the runs would wait forever"
            )


def run_grid(
    specs: list[RunSpec],
    params: Params,
    prepared: Prepared,
    resources: Resources,
    tags: dict[str, str],
    on_done: Callable[[RunSpec, Finished | Missing], None],
) -> tuple[list[Finished], list[Missing]]:
    """Run every spec as a Ray task, inside a `ray_session`; return the finished runs and the
    missing ones. `tags` go on every run (commit, executor)."""
    import ray

    from .tracking import ensure_experiment

    # Created once here, so the workers find it; with the local store it gets its artifact
    # location under this root.
    ensure_experiment(params.mlflow.experiment)
    study_id = uuid.uuid4().hex
    tags = {**tags, "executor": "ray", "study_id": study_id}
    finished: list[Finished] = []
    missing: list[Missing] = []
    task = ray.remote(max_retries=0)(train_task)
    data = ray.put(prepared)
    pending = {
        task.options(name=spec.run_name, num_cpus=resources.cpus, num_gpus=resources.gpus).remote(
            spec, data, params, tags, resources.threads
        ): spec
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
                outcome = Missing(spec.variant_name, spec.seed, spec.run_name, *why(e))
                missing.append(outcome)
            on_done(spec, outcome)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        # Let the cancelled tasks die first, or one just starting could open its run after
        # the search below.
        ray.wait(list(pending), num_returns=len(pending), timeout=30)
        close_orphans(params.mlflow.experiment, study_id, "KILLED", "interrupted")
        raise
    if missing:
        close_orphans(params.mlflow.experiment, study_id, "FAILED", "worker lost")
    return finished, missing


def why(error: Exception) -> tuple[str, bool]:
    """One line on why a task failed, and whether its training diverged."""
    import ray

    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause
        line = f"{type(cause).__name__}: {cause}".splitlines()[0]
        return line, isinstance(cause, TrainingDiverged)
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return "its worker process died (killed, or out of memory) before the run finished", False
    if isinstance(error, ray.exceptions.TaskCancelledError):
        return "cancelled", False
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": "), False


def close_orphans(experiment: str, study_id: str, status: str, failure: str) -> None:
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
        client.set_tag(run.info.run_id, "failure", failure)
        client.set_terminated(run.info.run_id, status)
