"""A sweep stage: one point of a strength path, its seeds trained together,
`sweeps/<technique>/<strength>/seed<k>.json`."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.config import Params, Strength
from ..core.paths import Layout
from ..core.spec import strength_text, sweep_name, sweep_spec
from ..data.prepared import load_pool
from ..executors.local import fail_if_diverged, on_device, run_here
from ..executors.tracked_stack import RunContext
from ..outputs import sweep_files
from ..training.applicable import check_applicable


def sweep_run(
    params: Params,
    layout: Layout,
    technique: str,
    strength: Strength,
    seeds: list[int] | None = None,
    out: str | None = None,
) -> None:
    """One point of a strength path: TECHNIQUE at `strength` on top of the baseline variant,
    every seed of params.yaml (or `seeds`), one MLflow run each:
    `sweeps/<technique>/<strength>/seed<k>.json` (or `out/seed<k>.json`)."""
    specs = [sweep_spec(params, technique, strength, s) for s in seeds or params.train.seeds]
    pool = load_pool(layout.prepared)
    check_applicable(specs, pool)
    tags = {"sweep_technique": technique, "sweep_strength": strength_text(strength)}
    context = RunContext.of(params.mlflow, pool, kind="sweep", tags=tags)
    data = on_device(params.train.device, pool)
    records, diverged = run_here(specs, data, context, params.train)
    folder = Path(out) if out else layout.sweep_point(technique, strength)
    fail_if_diverged(diverged, str(folder))
    for path in sweep_files.write_sweep_point(layout, folder, technique, strength, records):
        click.echo(f"{sweep_name(technique, strength)}: {path}", err=True)
