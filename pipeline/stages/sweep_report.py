"""The sweep-report stage: `reports/sweep/`, each technique's path against its strength."""

from __future__ import annotations

import click

from ..core.config import Params
from ..core.files import files_into, json_text
from ..core.metrics import METRICS, PATH_METRICS
from ..core.paths import Layout
from ..outputs import sweep_files, variant_files
from ..reports import figures, sweep


def sweep_report(params: Params, layout: Layout) -> None:
    """`reports/sweep/`: each technique's path against its strength, and its best strength."""
    baseline = variant_files.read_variant(layout, params, params.report.baseline)
    points, unreadable = sweep_files.read_sweep_points(layout)
    for path in unreadable:
        click.echo(
            f"warning: {path.relative_to(layout.root)} is not a sweep point; left out", err=True
        )
    paths = sweep.strength_paths(params, baseline, points)
    summary = sweep.summarise(paths, params.report)
    with files_into(layout.sweep_reports) as staging:
        titles = [METRICS[key].title for key in PATH_METRICS]
        figures.strength_paths(sweep.figure_data(paths), titles, staging / "strength_paths.png")
        (staging / "sweep.md").write_text(sweep.markdown(summary, params))
        (staging / "summary.json").write_text(json_text(summary))
    click.echo(f"sweep report: {(layout.sweep_reports / 'sweep.md').relative_to(layout.root)}")
