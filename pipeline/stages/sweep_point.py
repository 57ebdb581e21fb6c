"""A sweep stage: one point of a strength path, `sweeps/<technique>/<strength>-seed<k>.json`."""

from __future__ import annotations

from pathlib import Path

import click

from .. import outputs
from ..config import Params
from ..data import load_prepared
from ..executors.local import on_device, run_here
from ..paths import Layout
from ..run import RunContext
from ..spec import sweep_spec


def sweep_run(
    params: Params, layout: Layout, technique: str, strength: float, seed: int, out: str | None
) -> None:
    """One point of a strength path: TECHNIQUE at `strength` on top of the baseline variant,
    one seed, one MLflow run: `sweeps/<technique>/<strength>-seed<k>.json` (or `out`)."""
    spec = sweep_spec(params, technique, strength, seed)
    prepared = load_prepared(layout.prepared)
    tags = {"sweep_technique": technique, "sweep_strength": f"{strength:g}"}
    context = RunContext.of(params.mlflow, prepared.logged(), kind="sweep", tags=tags)
    data = on_device(params.train.device, prepared)
    [record] = run_here([spec], data, context, params.train)
    target = Path(out) if out else layout.sweep_point(technique, strength, seed)
    outputs.write_sweep_point(layout, target, technique, strength, record)
    click.echo(f"{technique}={strength:g} seed {seed}: {target}", err=True)
