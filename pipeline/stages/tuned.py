"""The tuned study's two stages, after the strength paths' points: `choose` (each technique's
strength per seed, by validation loss, with seeds added in rounds while a technique's verdicts
are undecided: reports/tuned/chosen.csv, tuned-rounds/) and `tuned-report` (the chosen runs
against the baseline on test: reports/tuned/tuned.md, summary.json).

A seed the rounds add is reused by a later run of `choose`, as the main study's rounds reuse
theirs, when it was trained with the same settings, data and device beside the same first
seeds of its point (`executors.reuse.reuse_key`): adding a strength trains the rounds' seeds of that
strength only."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

import click

from ..analysis.seed_rounds import Schedule, as_planned, rounds_for_report
from ..analysis.seed_rounds import fixed as one_look
from ..analysis.tuning import (
    Grids,
    TunedStudy,
    fixed_strength_variants,
    grid_runs,
    tuned_until_decided,
    tuned_verdicts,
)
from ..core.config import COMBINED, Params, Strength, strength_text
from ..core.errors import DataError
from ..core.files import csv_text, json_text, write_atomic
from ..core.paths import Layout
from ..core.records import RunRecord
from ..core.spec import RunSpec, run_specs, sweep_spec
from ..data.prepared import Pool, load_pool
from ..executors.reuse import reuse_key
from ..outputs import sweep_files, tuned_round_files, variant_files
from ..outputs.tuned_round_files import Key
from ..reports import tuned as tuned_report_text
from ..tracking import store, ui_view

if TYPE_CHECKING:  # training's imports (torch): only where a round trains
    from ..training.device import SeedSplits


def grids(params: Params, layout: Layout) -> Grids:
    """Each technique's grid of runs under sweeps/ (`tuning.grid_runs`)."""
    return grid_runs(params, sweep_files.read_sweep_points(layout)[0])


def baseline_runs(params: Params, layout: Layout) -> dict[int, RunRecord]:
    """The baseline's runs of train.seeds, by seed, or a DataError."""
    baseline = train_seeds(params, layout, params.report.baseline)
    if baseline is None:
        raise DataError(
            f"{params.report.baseline} has no run for every seed of train.seeds: run dvc repro"
        )
    return baseline


class RoundTraining:
    """The seeds a round of the tuned study asks for: per technique every strength of its
    grid, and the baseline's; those stored under tuned-rounds/ with the same `reuse_key`
    reused, the others trained here, each stored as it finishes."""

    def __init__(
        self, params: Params, layout: Layout, paths: Grids, baseline: dict[int, RunRecord]
    ) -> None:
        self.params, self.layout = params, layout
        self.paths, self.baseline = paths, baseline  # the first seeds' runs
        self.stored = tuned_round_files.read_seeds(layout)
        self.kept: set[Key] = set()
        self.rounds_done = 0
        self._pool: Pool | None = None
        self._data: SeedSplits | None = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = load_pool(self.layout.prepared)
        return self._pool

    def points(
        self, need: dict[str, list[int]]
    ) -> list[tuple[tuple[str | None, Strength], list[RunSpec], list[bytes]]]:
        """Each (technique, strength) of `need` (technique None: the baseline), its specs and
        the results of its first seeds, beside which its seeds are reused."""
        params = self.params
        out = []
        for name, seeds in need.items():
            if name == params.report.baseline:
                first = [self.baseline[s] for s in params.train.seeds]
                out.append(((None, 0.0), run_specs(params, name, seeds), _results(first)))
                continue
            for strength in sorted(self.paths[name]):
                specs = [sweep_spec(params, name, strength, s) for s in seeds]
                first = [self.paths[name][strength][s] for s in params.train.seeds]
                out.append(((name, strength), specs, _results(first)))
        return out

    def train(self, need: dict[str, list[int]]) -> tuple[Grids, dict[int, RunRecord]]:
        """A round: the seeds `need` names, per technique (every strength) and the baseline."""
        from ..executors.local import fail_if_diverged, on_device, run_here
        from ..executors.tracked_stack import RunContext

        self.rounds_done += 1
        added: Grids = {}
        base: dict[int, RunRecord] = {}
        todo = []
        for (technique, strength), specs, files in self.points(need):
            key = reuse_key(self.params, self.pool, specs[0], files)
            for spec in specs:
                stored = self.stored.get((technique, strength, spec.seed))
                if stored is not None and stored[0] == key:
                    self._add(added, base, technique, strength, stored[1])
                else:
                    todo.append((technique, strength, key, spec))
        click.echo(
            f"round {self.rounds_done}: {len(todo)} run(s) to train, "
            f"{sum(len(p) for path in added.values() for p in path.values()) + len(base)} "
            f"reused ({', '.join(need)})",
            err=True,
        )
        if self._data is None and todo:
            self._data = on_device(self.params.train.device, self.pool)
        groups: dict[tuple[str | None, Strength, str], list[RunSpec]] = {}
        for technique, strength, key, spec in todo:
            groups.setdefault((technique, strength, key), []).append(spec)
        for (technique, strength, key), specs in groups.items():
            tags = {
                "sweep_technique": technique or self.params.report.baseline,
                "sweep_strength": strength_text(strength),
                "round": str(self.rounds_done),
            }
            context = RunContext.of(self.params.mlflow, self.pool, kind="sweep", tags=tags)

            def store_it(record: RunRecord, t=technique, s=strength, k=key) -> None:
                tuned_round_files.write_seed(self.layout, t, s, record, k)

            assert self._data is not None
            records, diverged = run_here(
                specs, self._data, context, self.params.train, None, store_it
            )
            fail_if_diverged(diverged, str(self.layout.tuned_rounds_record))
            for record in records:
                self._add(added, base, technique, strength, record)
        return added, base

    def _add(
        self,
        added: Grids,
        base: dict[int, RunRecord],
        technique: str | None,
        strength: Strength,
        record: RunRecord,
    ) -> None:
        self.kept.add((technique, strength, record.seed))
        if technique is None:
            base[record.seed] = record
        else:
            added.setdefault(technique, {}).setdefault(strength, {})[record.seed] = record


def _results(records: list[RunRecord]) -> list[bytes]:
    """Runs' results as bytes (each record with its history): what a reuse key reads."""
    return [json_text({**r.to_json(), "history": r.history}).encode() for r in records]


def fixed_rows(
    params: Params, layout: Layout
) -> tuple[dict[str, tuple[str, float]], dict[str, dict[int, RunRecord]]]:
    """The study's variants that are one technique of the paths at one strength, and the runs
    of those that have trained every seed of train.seeds as they are now, with the seeds the
    study's rounds added to them (`rounds/`), by seed."""
    techniques = {technique for technique, _ in params.sweep.points()}
    variants, fixed = fixed_strength_variants(params), {}
    try:
        added = rounds_for_report(params, layout).added
    except DataError as error:  # the rows stand on train.seeds alone
        click.echo(f"note: the fixed-strength rows without the study's rounds: {error}", err=True)
        added = None
    for technique, (name, _) in variants.items():
        if technique not in techniques:
            continue
        try:  # a row of its own where the variant has trained every seed, as it is now
            runs = variant_files.read_variant(layout, params, name, added(name) if added else [])
        except DataError as error:
            click.echo(f"note: no fixed-strength row for {technique}: {error}", err=True)
            continue
        by_seed = {r.seed: r for r in runs.records}
        if not runs.missing and all(seed in by_seed for seed in params.train.seeds):
            fixed[technique] = by_seed
    return variants, fixed


def run_rounds(params: Params, layout: Layout, fixed: int) -> TunedStudy:
    """The tuned study on the paths' points, its rounds run, their seeds trained where none
    is stored (tuned-rounds/, rewritten to hold what the rounds used, and what they did)."""
    paths = grids(params, layout)
    schedule = Schedule.of(params.train.seeds, params.rounds)
    baseline = baseline_runs(params, layout)
    training = RoundTraining(params, layout, paths, baseline)
    joint = tuple(params.sweep.combined)
    study = tuned_until_decided(
        schedule, paths, baseline, params.report, fixed, training.train, joint
    )
    tuned_round_files.write_record(layout, study.rounds.to_json(), training.kept)
    return study


def study_as_run(params: Params, layout: Layout) -> TunedStudy:
    """The tuned study as `choose` left it: the paths' points and the baseline's runs, with
    the seeds its rounds added (tuned-rounds/), or a DataError where they were run for other
    settings."""
    paths = grids(params, layout)
    baseline = baseline_runs(params, layout)
    schedule = Schedule.of(params.train.seeds, params.rounds)
    names = [params.report.baseline, *paths]
    margins = params.report.equivalence.model_dump()
    planned = one_look(schedule, names, params.report.alpha, margins)
    joint = tuple(params.sweep.combined)
    if not schedule.adaptive:
        return TunedStudy(paths, baseline, planned, joint)
    found = as_planned(
        tuned_round_files.read_record(layout),
        planned,
        f"{layout.tuned_rounds_record.relative_to(layout.root)}: missing, or made for other "
        "settings than params.yaml holds: run `python -m pipeline choose`",
    )
    for (technique, strength, seed), (_, record) in tuned_round_files.read_seeds(layout).items():
        if technique is None:
            baseline.setdefault(seed, record)
        elif strength in paths.get(technique, {}):
            paths[technique][strength].setdefault(seed, record)
    return TunedStudy(paths, baseline, found, joint)


def choose(params: Params, layout: Layout) -> None:
    """reports/tuned/chosen.csv: per technique and seed, the strength of lowest val loss, with
    seeds added in rounds while undecided (tuned-rounds/); in MLflow, each point's run tagged
    `chosen` true or false."""
    study = run_rounds(params, layout, len(fixed_rows(params, layout)[1]))
    tuned = study.tuned()
    write_atomic(layout.tuned / "chosen.csv", csv_text(tuned_report_text.chosen_rows(tuned)))
    store.tag_runs(
        {
            run.run_id: {"chosen": str(t.chosen.get(seed) == strength).lower()}
            for t in tuned
            for strength, runs in study.paths[t.technique].items()
            for seed, run in runs.items()
            if run.run_id
        }
    )
    install_view(params, [t.technique for t in tuned])
    for name, outcome in study.rounds.outcomes.items():
        click.echo(f"{name}: {outcome.seeds} seeds ({outcome.stopped})", err=True)
    click.echo(f"chosen: {(layout.tuned / 'chosen.csv').relative_to(layout.root)}")


def install_view(params: Params, techniques: list[str]) -> None:
    """The MLflow UI's view of the chosen runs, grouped by technique, and its address."""
    from mlflow.exceptions import MlflowException

    client, experiment = store.find_experiment(params.mlflow.experiment)
    if experiment is None:  # no run was tracked here (the paths' runs went elsewhere)
        return
    try:
        ui_view.install_tuned(client, experiment.experiment_id, techniques)
    except MlflowException as error:  # a view is a convenience: the choice stands without
        click.echo(f"note: the MLflow view was not written: {error.message}", err=True)
        return
    address = ui_view.link(ui_view.LOCAL_UI, experiment.experiment_id, ui_view.TUNED_KEY)
    click.echo(f"MLflow view of the chosen runs (`python -m pipeline ui`): {address}", err=True)


def read_chosen(layout: Layout) -> dict[str, dict[int, Strength]]:
    """chosen.csv: technique → seed → strength (of the joint grid: one per technique)."""
    path = layout.tuned / "chosen.csv"
    if not path.is_file():
        raise DataError(
            f"{path.relative_to(layout.root)} is missing: run `python -m pipeline choose`"
        )
    chosen: dict[str, dict[int, Strength]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            parts = tuple(float(x) for x in row["strength"].split(","))
            strength = parts if row["technique"] == COMBINED else parts[0]
            chosen.setdefault(row["technique"], {})[int(row["seed"])] = strength
    return chosen


def train_seeds(params: Params, layout: Layout, variant: str) -> dict[int, RunRecord] | None:
    """`variant`'s runs of train.seeds (its train stage's, not the rounds'), by seed; None
    unless it has all of them."""
    runs = variant_files.read_variant(layout, params, variant).records
    by_seed = {r.seed: r for r in runs if r.seed in params.train.seeds}
    return by_seed if len(by_seed) == len(params.train.seeds) else None


def tuned_report(params: Params, layout: Layout) -> None:
    """reports/tuned/: each technique at its chosen strengths against the baseline, on test."""
    variants, fixed = fixed_rows(params, layout)
    study = study_as_run(params, layout)
    chosen = read_chosen(layout)
    tuned = study.tuned()
    for t in tuned:
        if chosen.get(t.technique) != t.chosen:  # the choice stage read other runs
            raise DataError(
                f"reports/tuned/chosen.csv does not hold {t.technique}'s choice for these runs: "
                "run `python -m pipeline choose`"
            )
    verdicts, at_fixed = tuned_verdicts(
        tuned, study.baseline, params.report, fixed, study.rounds.schedule
    )
    summary = json_text(tuned_report_text.summary(tuned, verdicts, at_fixed, study.rounds))
    text = tuned_report_text.markdown(tuned, verdicts, params, variants, at_fixed, study.rounds)
    write_atomic(layout.tuned / "summary.json", summary)
    write_atomic(layout.tuned / "tuned.md", text)
    click.echo(f"tuned report: {(layout.tuned / 'tuned.md').relative_to(layout.root)}")
