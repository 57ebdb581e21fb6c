"""Run specs here, in this process: the seeds of a variant as one stack (`trainer.train_stack`),
one stack after another."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import click

from ..core.config import TrainConfig
from ..core.errors import RunsDiverged
from ..core.records import MissingRun, RunRecord
from ..core.spec import RunSpec
from ..data.prepared import Pool
from ..tracking import orphans
from ..training.device import SeedSplits, TrainingData, check_fits, resolve_device
from .checkpoint import Checkpoints
from .progress import StackReporter, summary_line
from .tracked_stack import RunContext, execute_stack


def on_device(device: str, pool: Pool) -> SeedSplits:
    """Each seed's splits of `pool`, on the training device `device` (`train.device`) names;
    a DataError first where one seed's splits would not fit in its free memory."""
    where = resolve_device(device)
    check_fits(pool, where)
    return SeedSplits(pool, where)


def stacks(specs: Sequence[RunSpec], size: int) -> list[list[RunSpec]]:
    """`specs` cut into stacks: the seeds of one variant together, at most `size` (0: all)."""
    out = []
    for _, group in itertools.groupby(specs, key=lambda s: s.variant_name):
        seeds = list(group)
        step = size or len(seeds)
        out += [seeds[i : i + step] for i in range(0, len(seeds), step)]
    return out


def run_here(
    specs: Sequence[RunSpec],
    data: TrainingData,
    context: RunContext,
    train: TrainConfig,
    checkpoints: Checkpoints | None = None,
    on_finished: Callable[[RunRecord], None] | None = None,
    on_epoch: Callable[[RunSpec, int, dict[str, float]], None] | None = None,
) -> tuple[list[RunRecord], list[MissingRun]]:
    """Every spec in this process, each variant's seeds as stacks of `train.parallel`: the
    records of the runs that finished and the seeds that diverged, each in spec order. A seed
    that diverges stops alone; an error or an interrupt stops its stack and is raised here.
    `on_finished(record)` hears each run as it finishes (`tracked_stack.execute_stack`),
    `on_epoch(spec, epoch, row)` each seed's epoch as it ends."""
    records, missing = [], []
    for stack in stacks(specs, train.parallel):
        reporter = StackReporter(stack)

        def hear(i: int, epoch: int, row: dict[str, float], stack=stack, reporter=reporter) -> None:
            reporter(i, epoch, row)
            if on_epoch is not None:
                on_epoch(stack[i], epoch, row)

        try:
            done = execute_stack(stack, data, context, hear, checkpoints, on_finished)
        finally:
            reporter.close()
        for spec, outcome in zip(stack, done, strict=True):
            if isinstance(outcome, MissingRun):
                click.echo(f"{spec.run_name}: FAILED: {outcome.reason}", err=True)
                missing.append(outcome)
            else:
                click.echo(f"{spec.run_name}: {summary_line(outcome.summary)}", err=True)
                records.append(outcome)
    return records, missing


def fail_if_diverged(missing: Sequence[MissingRun], outputs: str) -> None:
    """`RunsDiverged`, naming each seed that diverged and why, if any did; `outputs` names
    what the stage leaves unwritten, if anything."""
    if missing:
        each = "; ".join(f"{m.run_name}: {m.reason}" for m in missing)
        left = f"; nothing written to {outputs}" if outputs else ""
        raise RunsDiverged(
            f"{len(missing)} run(s) diverged ({each}); each is FAILED in MLflow, the other "
            f"seeds trained to their end{left}"
        )


def end_runs_of_dead_processes(experiment: str, variant: str) -> None:
    """End KILLED, and name, the runs of `variant` whose process died with them open
    (`orphans.end_runs_of_dead_processes`), before its seeds train again."""
    for name in orphans.end_runs_of_dead_processes(experiment, variant):
        click.echo(f"{name}: its process had died with the run open; the run is ended KILLED")
