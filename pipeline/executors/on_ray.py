"""Run specs on Ray: one task per spec, on a new local Ray instance or an existing cluster.

Each task trains one spec as one MLflow run, in the store that `MLFLOW_TRACKING_URI` names (on
a cluster: a shared tracking server that also serves the artifacts), and returns its
`RunRecord`, weights included, from which the driver writes the outputs. The prepared splits
travel once through Ray's object store, so the workers need no shared file system.

A task that fails (an exception, its worker killed, its node lost) becomes a `MissingRun` with
the reason, and the other tasks' records are kept. Tasks are not retried: a retry would start
a second MLflow run for the same (variant, seed).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from .. import run_ends, tracking
from ..config import Params
from ..data import Prepared
from ..errors import ConfigError, TrainingDiverged
from ..progress import quiet, summary_line
from ..records import MissingRun, RunRecord
from ..run import RunContext, execute_run
from ..signals import sigterm_handler_kept
from ..spec import RunSpec
from .local import on_device


@dataclass(frozen=True)
class Resources:
    """What each run asks Ray for. Fractions pack several small runs on one CPU or GPU."""

    cpus: float = 1.0
    gpus: float = 0.0

    @property
    def threads(self) -> int:
        """Torch threads per run: its whole CPUs, at least one."""
        return max(1, int(self.cpus))


def ray_address(address: str | None) -> str | None:
    """--address, else RAY_ADDRESS (which ray.init would follow anyway)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def default_gpus(params: Params) -> float:
    """One GPU per run where the runs train on CUDA: `train.device: cuda`, or `auto` on a
    driver that sees a GPU (a CPU-only driver of a GPU cluster passes --gpus-per-run)."""
    if params.train.device.startswith("cuda"):
        return 1.0
    if params.train.device == "auto":
        import torch

        return 1.0 if torch.cuda.is_available() else 0.0
    return 0.0


def check_settings(address: str | None, params: Params, gpus: float) -> None:
    """Fail before anything runs where Ray is missing, the runs could not share a store, or
    the GPU settings contradict each other."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install -e '.[cluster]' (make installs it)"
        ) from None
    # A server that also serves the artifacts; a bare database URI would leave each worker's
    # artifacts on its own disk.
    shared = (tracking.user_tracking_uri() or "").startswith(("http://", "https://", "databricks"))
    if address is not None and not shared:
        raise ConfigError(
            f"joining the Ray cluster at {address} needs a tracking server all its workers "
            "reach: start one (make server) and export MLFLOW_TRACKING_URI=http://HOST:PORT"
        )
    if address is not None:
        _check_reachable(address)
    if params.train.device.startswith("cuda") and gpus == 0:
        raise ConfigError(f"train.device is {params.train.device!r} but --gpus-per-run is 0")


def _check_reachable(address: str) -> None:
    """Something must listen at HOST:PORT: ray.init would otherwise retry for minutes."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not port.isdigit():  # `auto`, or a form Ray resolves itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {address}: {e.strerror or e}") from None


@contextmanager
def ray_session(address: str | None, resources: Resources) -> Iterator[None]:
    """Connected to Ray (a new local instance when `address` is None) for the block.

    Fails with one line where no cluster answers or none of its nodes could ever run a run
    (a task asking for more than any node has would wait forever).
    """
    import ray

    env = {"MLFLOW_TRACKING_URI": tracking.tracking_uri()}
    launcher = tracking.launcher_run_id()
    if launcher is not None:  # under `mlflow run -e main`: the runs become its children
        env["MLFLOW_RUN_ID"] = launcher
    if resources.gpus == 0:  # Ray no longer hides the GPUs from tasks that asked for none
        env["CUDA_VISIBLE_DEVICES"] = ""
    runtime_env: dict[str, Any] = {"env_vars": env}
    if address is not None:
        # The cluster's workers run this very code, whatever their image holds.
        runtime_env["py_modules"] = [str(Path(__file__).parents[1])]
    local = {"include_dashboard": False} if address is None else {}
    try:
        # The workers' own output stays in Ray's logs; the driver prints one line per run.
        # "local": a new instance even where `ray start` runs one on this machine already.
        with sigterm_handler_kept():
            ray.init(
                address=address or "local", runtime_env=runtime_env, log_to_driver=False, **local
            )
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (
            ". A cluster started with token authentication (`ray start`'s default since Ray "
            "2.59) also needs RAY_AUTH_MODE=token and its token (`ray get-auth-token`, or "
            "RAY_AUTH_TOKEN) here"
        )
        where = address or "a new local instance"
        raise ConfigError(f"Ray at {where}: {first}{hint if address else ''}") from None
    try:
        _check_fits(resources)
        yield
    finally:
        ray.shutdown()


def _check_fits(resources: Resources) -> None:
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for name, flag, wanted in (
        ("CPU", "--cpus-per-run", resources.cpus),
        ("GPU", "--gpus-per-run", resources.gpus),
    ):
        largest = max((n.get(name, 0.0) for n in nodes), default=0.0)
        if wanted > largest:
            raise ConfigError(
                f"{flag} {wanted:g}: no node of the Ray cluster has that many {name}s (the "
                f"largest has {largest:g}), so the runs would wait forever"
            )


def run_task(
    spec: RunSpec, prepared: Prepared, train_device: str, context: RunContext, threads: int
) -> RunRecord:
    """One run, inside a Ray worker."""
    import ray
    import torch

    torch.set_num_threads(threads)
    where = {"worker_pid": str(os.getpid()), "ray_node": ray.get_runtime_context().get_node_id()}
    context = replace(context, tags={**context.tags, **where})
    return execute_run(spec, on_device(train_device, prepared), context, quiet)


def run_on_ray(
    specs: list[RunSpec],
    prepared: Prepared,
    params: Params,
    context: RunContext,
    resources: Resources,
) -> tuple[list[RunRecord], list[MissingRun]]:
    """Every spec as a Ray task, inside a `ray_session`: the finished runs' records (in spec
    order) and the runs that did not finish. Prints one line per run as it ends."""
    import ray

    # Created once here, so the workers find it; with the local store it gets its artifact
    # location under this root.
    tracking.ensure_experiment(context.experiment)
    study_id = uuid.uuid4().hex
    context = replace(context, tags={**context.tags, "executor": "ray", "study_id": study_id})
    task = ray.remote(max_retries=0)(run_task)
    data = ray.put(prepared)
    pending = {
        task.options(name=spec.run_name, num_cpus=resources.cpus, num_gpus=resources.gpus).remote(
            spec, data, params.train.device, context, resources.threads
        ): i
        for i, spec in enumerate(specs)
    }
    finished: dict[int, RunRecord] = {}
    missing: list[MissingRun] = []
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ref)
            spec = specs[i]
            head = f"[{len(finished) + len(missing) + 1}/{len(specs)}] {spec.run_name}"
            try:
                finished[i] = ray.get(ref)
                click.echo(f"{head}: {summary_line(finished[i].summary)}", err=True)
            except ray.exceptions.RayError as e:
                missing.append(MissingRun(spec.variant_name, spec.seed, spec.run_name, *why(e)))
                click.echo(f"{head}: FAILED: {missing[-1].reason}", err=True)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        # Let the cancelled tasks die first, or one just starting could open its run after
        # the search below.
        ray.wait(list(pending), num_returns=len(pending), timeout=30)
        run_ends.close_orphans(context.experiment, "study_id", study_id, "KILLED", "interrupted")
        raise
    if missing:
        run_ends.close_orphans(context.experiment, "study_id", study_id, "FAILED", "worker lost")
    return [finished[i] for i in sorted(finished)], missing


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
