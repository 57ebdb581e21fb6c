"""The tuned study's two stages, after the strength paths' points: `choose` (each technique's
strength per seed, by validation loss: reports/tuned/chosen.csv) and `tuned-report` (the chosen
runs against the baseline on test: reports/tuned/tuned.md, summary.json)."""

from __future__ import annotations

import csv

import click

from ..analysis.tuning import fixed_strength_variants, grid_runs, tune, tuned_verdicts
from ..core.config import Params
from ..core.errors import DataError
from ..core.files import csv_text, json_text, write_atomic
from ..core.paths import Layout
from ..core.records import RunRecord
from ..outputs import sweep_files, variant_files
from ..reports import tuned as tuned_report_text
from ..tracking import store


def grids(params: Params, layout: Layout) -> dict[str, dict[float, dict[int, RunRecord]]]:
    """Each technique's grid of runs under sweeps/ (`tuning.grid_runs`)."""
    return grid_runs(params, sweep_files.read_sweep_points(layout)[0])


def choose(params: Params, layout: Layout) -> None:
    """reports/tuned/chosen.csv: per technique and seed, the strength of lowest val loss; in
    MLflow, each point's run tagged `chosen` true or false."""
    paths = grids(params, layout)
    tuned = [tune(t, path, params.train.seeds) for t, path in paths.items()]
    write_atomic(layout.tuned / "chosen.csv", csv_text(tuned_report_text.chosen_rows(tuned)))
    store.tag_runs(
        {
            run.run_id: {"chosen": str(t.chosen[seed] == strength).lower()}
            for t in tuned
            for strength, runs in paths[t.technique].items()
            for seed, run in runs.items()
            if run.run_id
        }
    )
    click.echo(f"chosen: {(layout.tuned / 'chosen.csv').relative_to(layout.root)}")


def read_chosen(layout: Layout) -> dict[str, dict[int, float]]:
    """chosen.csv: technique → seed → strength."""
    path = layout.tuned / "chosen.csv"
    if not path.is_file():
        raise DataError(
            f"{path.relative_to(layout.root)} is missing: run `python -m pipeline choose`"
        )
    chosen: dict[str, dict[int, float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            chosen.setdefault(row["technique"], {})[int(row["seed"])] = float(row["strength"])
    return chosen


def train_seeds(params: Params, layout: Layout, variant: str) -> dict[int, RunRecord] | None:
    """`variant`'s runs of train.seeds (its train stage's, not the rounds'), by seed; None
    unless it has all of them."""
    runs = variant_files.read_variant(layout, params, variant).records
    by_seed = {r.seed: r for r in runs if r.seed in params.train.seeds}
    return by_seed if len(by_seed) == len(params.train.seeds) else None


def tuned_report(params: Params, layout: Layout) -> None:
    """reports/tuned/: each technique at its chosen strengths against the baseline, on test."""
    paths = grids(params, layout)
    chosen = read_chosen(layout)
    tuned = []
    for technique, path in paths.items():
        t = tune(technique, path, params.train.seeds)
        if chosen.get(technique) != t.chosen:  # the choice stage read other runs
            raise DataError(
                f"reports/tuned/chosen.csv does not hold {technique}'s choice for these runs: "
                "run `python -m pipeline choose`"
            )
        tuned.append(t)
    baseline = train_seeds(params, layout, params.report.baseline)
    if baseline is None:
        raise DataError(
            f"{params.report.baseline} has no run for every seed of train.seeds: run dvc repro"
        )
    variants, fixed = fixed_strength_variants(params), {}
    for technique, (name, _) in variants.items():
        try:  # a row of its own where the variant has trained every seed, as it is now
            runs = train_seeds(params, layout, name) if technique in paths else None
        except DataError as error:
            click.echo(f"note: no fixed-strength row for {technique}: {error}", err=True)
            continue
        if runs is not None:
            fixed[technique] = runs
    verdicts, at_fixed = tuned_verdicts(tuned, baseline, params.report, fixed)
    summary = json_text(tuned_report_text.summary(tuned, verdicts, at_fixed))
    text = tuned_report_text.markdown(tuned, verdicts, params, variants, at_fixed)
    write_atomic(layout.tuned / "summary.json", summary)
    write_atomic(layout.tuned / "tuned.md", text)
    click.echo(f"tuned report: {(layout.tuned / 'tuned.md').relative_to(layout.root)}")
