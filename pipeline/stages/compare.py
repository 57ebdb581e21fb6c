"""`compare`: one report across studies, read back from the MLflow store."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.config import Params
from ..core.files import files_into, json_text
from ..core.paths import Layout
from ..reports import across_studies, figures
from ..tracking import store


def compare(
    params: Params,
    layout: Layout,
    by: str,
    where: dict[str, str],
    experiment: str | None,
    out: str | None,
) -> None:
    """One report across studies from the MLflow store, grouped by a logged parameter, of the
    runs whose parameters match `where`: `reports/compare/<by>/` (or `out`)."""
    experiment = experiment or params.mlflow.experiment
    target = Path(out) if out else layout.compare(by)
    runs = across_studies.training_runs(store.finished_runs(experiment), experiment, by, where)
    found, left_out = across_studies.latest(runs)
    report = params.report
    summary = across_studies.summarise(
        found,
        report.baseline,
        list(params.variants),
        report.alpha,
        report.equivalence.model_dump(),
    )
    with files_into(target) as staging:
        figures.across_groups(
            by, list(summary), across_studies.figure_panels(summary), staging / "compare.png"
        )
        text = across_studies.markdown(summary, by, params.report.baseline, where, left_out)
        (staging / "compare.md").write_text(text)
        (staging / "summary.json").write_text(json_text(summary))
    click.echo(f"comparison: {target / 'compare.md'}")
