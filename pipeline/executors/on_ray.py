"""Run specs on Ray: one task per stack (a variant's seeds, `train.parallel` at most), on a
new local Ray instance or an existing cluster.

Each task trains its seeds as one stack, one MLflow run each, in the store that
`MLFLOW_TRACKING_URI` names (on a cluster: a shared tracking server that also serves the
artifacts), and returns their `RunRecord`s, weights included, from which the driver writes the
outputs. The pool travels once through Ray's object store (each worker draws its seeds' splits
from it), so the workers need no shared file system.

A task that fails (an exception, its worker killed, its node lost) makes each of its runs a
`MissingRun` with the reason, and the other tasks' records are kept. Tasks are not retried: a
retry would start a second MLflow run for the same (variant, seed).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from ..core.config import Params
from ..core.errors import ConfigError
from ..core.records import MissingRun, RunRecord
from ..core.signals import sigterm_handler_kept
from ..core.spec import RunSpec
from ..data.prepared import Pool
from ..tracking import orphans, store
from .local import on_device, stacks
from .progress import quiet, summary_line
from .tracked_stack import RunContext, execute_stack


@dataclass(frozen=True)
class Resources:
    """What each task (a stack of seeds) asks Ray for. Fractions pack several small stacks on
    one CPU or GPU."""

    cpus: float = 1.0
    gpus: float = 0.0


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
            "--executor ray needs Ray: pip install -e '.[cluster]' (or: make .venv/.cluster)"
        ) from None
    # A server that also serves the artifacts; a bare database URI would leave each worker's
    # artifacts on its own disk.
    shared = (store.user_tracking_uri() or "").startswith(("http://", "https://", "databricks"))
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
def ray_session(
    address: str | None, resources: Resources, modules: list[str] | None = None
) -> Iterator[None]:
    """Connected to Ray (a new local instance when `address` is None) for the block.

    Fails with one line where no cluster answers or none of its nodes could ever run a run
    (a task asking for more than any node has would wait forever).
    """
    import ray

    env = {"MLFLOW_TRACKING_URI": store.tracking_uri()}
    launcher = store.launcher_run_id()
    if launcher is not None:  # under `mlflow run -e main`: the runs become its children
        env["MLFLOW_RUN_ID"] = launcher
    if resources.gpus == 0:  # Ray no longer hides the GPUs from tasks that asked for none
        env["CUDA_VISIBLE_DEVICES"] = ""
    runtime_env: dict[str, Any] = {"env_vars": env}
    # The workers import the user's network from `modules` (`user_network.ship`); a
    # cluster's workers run this very code too, whatever their image holds.
    shipped = [*([str(Path(__file__).parents[1])] if address is not None else []), *(modules or [])]
    if shipped:
        runtime_env["py_modules"] = shipped
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
    stack: list[RunSpec], pool: Pool, train_device: str, context: RunContext
) -> list[RunRecord | MissingRun]:
    """One stack, inside a Ray worker."""
    import ray

    where = {"worker_pid": str(os.getpid()), "ray_node": ray.get_runtime_context().get_node_id()}
    context = replace(context, tags={**context.tags, **where})
    return execute_stack(stack, on_device(train_device, pool), context, quiet)


def run_on_ray(
    specs: list[RunSpec],
    pool: Pool,
    params: Params,
    context: RunContext,
    resources: Resources,
    on_finished: Callable[[RunRecord], None] | None = None,
) -> tuple[list[RunRecord], list[MissingRun]]:
    """Every stack of specs as a Ray task, inside a `ray_session`: the finished runs' records
    (in spec order) and the runs that did not finish. Prints one line per run as it ends;
    `on_finished(record)` hears each finished run as its task returns."""
    import ray

    # Created once here, so the workers find it; with the local store it gets its artifact
    # location under this root.
    store.ensure_experiment(context.experiment)
    study_id = uuid.uuid4().hex
    context = replace(context, tags={**context.tags, "executor": "ray", "study_id": study_id})
    task = ray.remote(max_retries=0)(run_task)
    data = ray.put(pool)
    grouped = stacks(specs, params.train.parallel)
    pending = {
        task.options(
            name=f"{stack[0].variant_name}×{len(stack)}",
            num_cpus=resources.cpus,
            num_gpus=resources.gpus,
        ).remote(stack, data, params.train.device, context): stack
        for stack in grouped
    }
    finished: dict[str, RunRecord] = {}
    missing: list[MissingRun] = []
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            stack = pending.pop(ref)
            try:
                outcomes = ray.get(ref)
            except ray.exceptions.RayError as e:  # the whole stack: its task or worker failed
                reason = why(e)
                outcomes = [MissingRun(s.variant_name, s.seed, s.run_name, reason) for s in stack]
            for spec, outcome in zip(stack, outcomes, strict=True):
                head = f"[{len(finished) + len(missing) + 1}/{len(specs)}] {spec.run_name}"
                if isinstance(outcome, MissingRun):  # lost, or its loss diverged
                    missing.append(outcome)
                    click.echo(f"{head}: FAILED: {outcome.reason}", err=True)
                else:
                    finished[spec.run_name] = outcome
                    if on_finished is not None:
                        on_finished(outcome)
                    click.echo(f"{head}: {summary_line(outcome.summary)}", err=True)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        # Let the cancelled tasks die first, or one just starting could open its run after
        # the search below.
        ray.wait(list(pending), num_returns=len(pending), timeout=30)
        orphans.close_orphans(context.experiment, "study_id", study_id, "KILLED", "interrupted")
        raise
    if missing:
        orphans.close_orphans(context.experiment, "study_id", study_id, "FAILED", "worker lost")
    return [finished[s.run_name] for s in specs if s.run_name in finished], missing


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
