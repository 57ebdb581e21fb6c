"""Run specs here, in this process: the seeds of a variant as one stack (`trainer.train_stack`),
one stack after another."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import click

from ..checkpoint import Checkpoints
from ..config import TrainConfig
from ..data import Prepared
from ..device import DeviceData, resolve_device
from ..progress import StackReporter, summary_line
from ..records import RunRecord
from ..run import RunContext, execute_stack
from ..spec import RunSpec


def on_device(device: str, prepared: Prepared) -> DeviceData:
    """The prepared splits on the training device `device` (`train.device`) names."""
    return DeviceData.of(prepared, resolve_device(device))


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
    data: DeviceData,
    context: RunContext,
    train: TrainConfig,
    checkpoints: Checkpoints | None = None,
) -> list[RunRecord]:
    """Every spec in this process, each variant's seeds as stacks of `train.parallel`; the
    records in spec order. The first failure stops the stack it happens in (its other runs
    end KILLED) and is raised here."""
    records = []
    for stack in stacks(specs, train.parallel):
        reporter = StackReporter(stack)
        try:
            done = execute_stack(stack, data, context, reporter, checkpoints)
        finally:
            reporter.close()
        for spec, record in zip(stack, done, strict=True):
            click.echo(f"{spec.run_name}: {summary_line(record.summary)}", err=True)
        records += done
    return records
