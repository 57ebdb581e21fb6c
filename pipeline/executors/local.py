"""Run specs here: in this process one after another (on a GPU, or with `train.parallel: 1`),
or on a CPU side by side in forked workers (`forked`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import click
import torch

from ..checkpoint import Checkpoints
from ..config import TrainConfig
from ..data import Prepared
from ..device import DeviceData, resolve_device
from ..progress import EpochReporter, summary_line
from ..records import RunRecord
from ..run import RunContext, execute_run, warm_up_model_logging
from ..spec import RunSpec
from .forked import WorkerPlan, plan_workers, run_jobs


def on_device(device: str, prepared: Prepared) -> DeviceData:
    """The prepared splits on the training device `device` (`train.device`) names."""
    return DeviceData.of(prepared, resolve_device(device))


def plan_for_seeds(train: TrainConfig, n_specs: int, device: torch.device) -> WorkerPlan:
    """A variant's seeds: side by side on a CPU (the faster use of a few cores for small runs,
    see `make bench`); one after another on a GPU, where a run already fills the device and
    CUDA does not survive a fork.

    The thread count follows from the study's seeds in params.yaml, not from how many run now,
    so one seed trained alone (`--seed`, `mlflow run`, `--resume`) computes exactly as it does
    inside its stage."""
    if device.type != "cpu":
        return plan_alone(train)
    study = plan_workers(len(train.seeds), train.parallel, train.threads)
    return WorkerPlan(min(study.at_once, n_specs), study.threads)


def plan_alone(train: TrainConfig) -> WorkerPlan:
    """A run that has the machine to itself (a strength-path point: DVC runs its stages one
    at a time): every core's thread, unless `train.threads` says otherwise."""
    return WorkerPlan(1, train.threads or torch.get_num_threads())


def run_here(
    specs: Sequence[RunSpec],
    data: DeviceData,
    context: RunContext,
    plan: WorkerPlan,
    checkpoints: Checkpoints | None = None,
) -> list[RunRecord]:
    """Every spec in this process or in forked workers, by `plan`; the records in spec order.
    The first failure stops the others (their runs end KILLED) and is raised here."""

    def one(spec: RunSpec) -> RunRecord:
        reporter = EpochReporter(spec, live_bar=plan.at_once == 1)
        try:
            record = execute_run(spec, data, context, reporter, checkpoints)
        finally:
            reporter.close()
        click.echo(f"{spec.run_name}: {summary_line(record.summary)}", err=True)
        return record

    if plan.at_once == 1:
        torch.set_num_threads(plan.threads)
        return [one(spec) for spec in specs]
    torch.set_num_threads(1)  # no OpenMP thread pool in a process about to fork
    if context.log_model:
        warm_up_model_logging()
    return run_jobs([functools.partial(one, spec) for spec in specs], plan)
