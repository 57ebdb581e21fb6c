"""The rounds stage: more seeds for the variants whose verdicts are still undecided after their
train stages, and for the baseline they pair with, until each is decided or `rounds.max`
is reached (`seed_rounds.seeds_until_decided`); `rounds/`.

With `rounds: null` it trains nothing and writes the one look `train.seeds` makes. A seed
stored by an earlier run of this stage is reused, not trained again, when it was trained with
the same settings, data and device beside the same first-round results of its variant: code
that changed any number changes those too. So editing one variant retrains only that variant, the
seeds the rounds then need, and no other variant's.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Protocol

import click

from ..analysis.seed_rounds import Rounds, Schedule, fixed, seeds_until_decided
from ..core.config import Params
from ..core.paths import Layout
from ..core.records import MissingRun, RunRecord
from ..core.spec import RunSpec, run_specs
from ..data.prepared import Pool, load_pool
from ..executors.reuse import reuse_key
from ..outputs import round_files, variant_files
from ..outputs.variant_files import VariantRuns
from ..tracking import orphans

if TYPE_CHECKING:  # training's imports (torch): only where a round trains
    from ..executors.tracked_stack import RunContext


class RoundExecutor(Protocol):
    """Who trains a round's runs: the records of those that finished, and the runs that did
    not; `on_finished(record)` stores each run as it finishes, so that an interrupted round
    keeps them. In this process (`TrainHere`) or on Ray (`train_on_ray.RoundsOnRay`)."""

    def __call__(
        self,
        specs: list[RunSpec],
        context: RunContext,
        on_finished: Callable[[RunRecord], None],
    ) -> tuple[list[RunRecord], list[MissingRun]]: ...


class TrainHere:
    """Rounds trained in this process, on `pool` moved onto the training device. A seed that
    diverges fails the stage, as in a train stage, once the round's other seeds have finished
    (and been stored)."""

    def __init__(self, params: Params, pool: Pool) -> None:
        from ..executors.local import on_device  # training's imports: only where rounds train

        self.params = params
        self.data = on_device(params.train.device, pool)

    def __call__(
        self,
        specs: list[RunSpec],
        context: RunContext,
        on_finished: Callable[[RunRecord], None],
    ) -> tuple[list[RunRecord], list[MissingRun]]:
        from ..executors.local import fail_if_diverged, run_here

        train = self.params.train
        records, diverged = run_here(specs, self.data, context, train, None, on_finished)
        fail_if_diverged(diverged, "rounds/rounds.json")
        return records, []


def made_with(layout: Layout, params: Params, pool: Pool, variant: str) -> str:
    """What a seed the rounds add to `variant` is trained with (`reuse_key`), its first round
    being the variant's train-stage results."""
    first = layout.metrics(variant)
    # A variant none of whose first-round runs finished (on Ray) has no history.csv.
    files = [first / "runs.json", first / "history.csv"]
    spec = run_specs(params, variant, [0])[0]
    return reuse_key(params, pool, spec, [path.read_bytes() for path in files if path.exists()])


class RoundTraining:
    """The seeds a round asks for (`train`, which `seeds_until_decided` calls once per look
    after the first): those stored under `rounds/` with the same `made_with` reused, the others
    trained by `executor` and stored as each finishes."""

    def __init__(
        self,
        params: Params,
        layout: Layout,
        pool: Pool,
        executor: RoundExecutor,
        tags: dict[str, str] | None,
    ) -> None:
        self.params, self.layout, self.pool, self.executor = params, layout, pool, executor
        self.tags = tags or {}
        names = list(params.variants)
        self.keys = {name: made_with(layout, params, pool, name) for name in names}
        self.stored = {name: round_files.read_round_seeds(layout, name) for name in names}
        self.rounds_done = 0

    def train(self, need: dict[str, list[int]]) -> dict[str, VariantRuns]:
        """A round: the seeds `need` names, per variant, stored ones reused, the others
        trained."""
        self.rounds_done += 1
        reused = {name: self.reusable(name, seeds) for name, seeds in need.items()}
        for record in (r for runs in reused.values() for r in runs):
            # Stored by a stage killed before it could end the run (made here): it finished.
            if variant_files.run_id_of(self.layout, record.variant, record.seed) == record.run_id:
                orphans.end_if_running(record.run_id, "FINISHED")
        from ..executors.local import end_runs_of_dead_processes  # training's imports: here only
        from ..executors.tracked_stack import RunContext

        for name in need:
            end_runs_of_dead_processes(self.params.mlflow.experiment, name)
        specs = [
            spec
            for name, seeds in need.items()
            for spec in run_specs(self.params, name, seeds)
            if spec.seed not in {r.seed for r in reused[name]}
        ]
        click.echo(
            f"round {self.rounds_done}: {len(specs)} run(s) to train, "
            f"{sum(map(len, reused.values()))} reused ({', '.join(need)})",
            err=True,
        )
        tags = {**self.tags, "round": str(self.rounds_done)}
        context = RunContext.of(self.params.mlflow, self.pool, tags=tags)
        records, missing = self.executor(specs, context, self.store) if specs else ([], [])
        return {
            name: VariantRuns(
                name,
                sorted(
                    reused[name] + [r for r in records if r.variant == name], key=attrgetter("seed")
                ),
                [m for m in missing if m.variant == name],
            )
            for name in need
        }

    def reusable(self, name: str, seeds: list[int]) -> list[RunRecord]:
        """The stored seeds of `name` among `seeds` that were made with the same settings."""
        stored = self.stored[name]
        return [stored[s][1] for s in seeds if stored.get(s, ("",))[0] == self.keys[name]]

    def store(self, record: RunRecord) -> None:
        round_files.write_round_seed(self.layout, record, self.keys[record.variant])


def rounds(
    params: Params,
    layout: Layout,
    executor: RoundExecutor | None = None,
    tags: dict[str, str] | None = None,
) -> Rounds:
    """Read every variant's train-stage runs, add seeds in rounds where undecided, write
    `rounds/`. `executor` trains them (default: this process), on the pool of
    `data/prepared/`."""
    schedule = Schedule.of(params.train.seeds, params.rounds)
    names = list(params.variants)
    margins = params.report.equivalence.model_dump()
    if not schedule.adaptive:  # nothing to train
        done = fixed(schedule, names, params.report.alpha, margins)
        round_files.write_rounds(layout, done.to_json(), {})
        return done
    first = {name: variant_files.read_variant(layout, params, name) for name in names}
    pool = load_pool(layout.prepared)
    training = RoundTraining(params, layout, pool, executor or TrainHere(params, pool), tags)
    done = seeds_until_decided(
        schedule, first, params.report.baseline, params.report.alpha, margins, training.train
    )
    first_seeds = set(schedule.first())
    round_files.write_rounds(
        layout,
        done.to_json(),
        {name: [s for s in done.seeds_of(name) if s not in first_seeds] for name in names},
    )
    for name, outcome in done.outcomes.items():
        click.echo(f"{name}: {outcome.seeds} seeds ({outcome.stopped})", err=True)
    return done
