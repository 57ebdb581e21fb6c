"""Each technique at its best strength: chosen on validation within every seed, judged on test.

A practitioner tunes a technique's strength before comparing it. Per seed, the strength of the
technique's grid with the lowest validation loss (at its best epoch) is chosen; that seed's
tuned result is the chosen run, whose test split was evaluated once, with the weights of its
best epoch. The choice reads validation only: a seed's test split is its own part of the pool,
apart from the training and validation splits the choice saw, so the test numbers of a chosen
run are as unbiased as any run's. Its validation numbers are not (the best of several looks
better than it is): the tuned verdicts rest on test measures only (`metrics.TUNED`).

The tuned techniques are one family: every technique on every test measure, α shared as in the
gap report (`comparisons.Family`), through the same `against_baseline`. Where the `rounds`
section adds seeds, a technique still undecided gets `step` more, each trained at every strength
of its grid and tuned within itself, and the baseline the same seeds (`tuned_until_decided`,
the main study's `seeds_until_decided`). What decides whether a technique goes on is what
decides in the main study, validation measures, here those of the chosen runs: the test split
never drives a choice. Their flattery can stop a technique early, never make a verdict less
sure: every interval holds at every look with probability 1 − α, whatever stopped the rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..core.config import COMBINED, Params, ReportConfig, Strength, strength_text
from ..core.errors import DataError
from ..core.metrics import TUNED
from ..core.records import RunRecord
from ..core.spec import RunSpec, sweep_spec
from ..core.techniques import SWEPT
from ..outputs.variant_files import VariantRuns
from .comparisons import Comparison, Family, against_baseline
from .seed_rounds import Rounds, Schedule, seeds_until_decided

# strength → seed → run, for one technique; and technique → its path
StrengthPath = dict[Strength, dict[int, RunRecord]]
Grids = dict[str, StrengthPath]

CHOSEN_ON = "best_val_loss"
# Each test measure's smallest difference that matters: the report's δ of its kind.
DELTA_OF = {"test_gap": "loss_gap_last", "test_loss": "best_val_loss"}


def trained_as_now(record: RunRecord | None, spec: RunSpec) -> bool:
    return record is not None and record.hyperparameters == spec.hyperparameters()


def grid_runs(params: Params, points: Mapping[tuple[str, Strength, int], RunRecord]) -> Grids:
    """Each technique with strengths in params.yaml, and the joint grid (`combined`) if it has
    points, from the strength paths' `points` (technique, strength, seed → run): strength →
    seed → its run, each seed of train.seeds trained with today's settings, or a DataError
    naming the seeds a point lacks."""
    seeds = params.train.seeds
    grids: Grids = {}
    for technique, strength in [*params.sweep.points(), *params.sweep.joint_points()]:
        missing = [
            seed
            for seed in seeds
            if not trained_as_now(
                points.get((technique, strength, seed)),
                sweep_spec(params, technique, strength, seed),
            )
        ]
        if missing:
            raise DataError(
                f"sweep point {technique}={strength_text(strength)} has no run with the "
                f"settings of params.yaml for seeds {missing} under sweeps/: run `make sweep`"
            )
        runs = {seed: points[technique, strength, seed] for seed in seeds}
        grids.setdefault(technique, {})[strength] = runs
    if not grids:
        raise DataError("params.yaml has no `sweep` strengths: list some under `sweep:`")
    return grids


def on_test(record: RunRecord) -> dict[str, float]:
    """A run's test measures: test loss and accuracy (best epoch's weights), and the test gap,
    test loss − train loss at that epoch."""
    best = int(record.summary["best_epoch"])
    train_loss = record.history[best - 1]["train_loss"]
    return {
        "test_gap": record.summary["test_loss"] - train_loss,
        "test_loss": record.summary["test_loss"],
        "test_accuracy": record.summary["test_accuracy"],
    }


@dataclass(frozen=True)
class TunedTechnique:
    """A technique tuned within each seed: the grid, each seed's chosen strength and the test
    measures of the chosen runs."""

    technique: str
    grid: tuple[Strength, ...]
    chosen: dict[int, Strength]
    measures: dict[str, dict[int, float]]
    axes: tuple[str, ...] = ()  # the joint grid's techniques, a strength's parts in order

    def wins(self) -> dict[Strength, int]:
        """How many seeds chose each strength of the grid."""
        return {s: sum(c == s for c in self.chosen.values()) for s in self.grid}

    def edges(self) -> dict[str, float]:
        """Per axis (the technique; each technique of the joint grid), the end of its strengths
        (the smallest or the largest) that more than half of the seeds chose, where the best
        strength may lie beyond the grid; none with fewer than three strengths on the axis, or
        one seed, where an end is no sign."""
        axes = self.axes or (self.technique,)
        found = {}
        for i, axis in enumerate(axes):
            values = sorted({s[i] if isinstance(s, tuple) else s for s in self.grid})
            picked = [c[i] if isinstance(c, tuple) else c for c in self.chosen.values()]
            for end in (values[0], values[-1]):
                if len(values) > 2 and len(picked) > 1 and 2 * picked.count(end) > len(picked):
                    found[axis] = end
                    break
        return found


def tune(
    technique: str,
    path: Mapping[Strength, Mapping[int, RunRecord]],
    seeds: Sequence[int],
    axes: tuple[str, ...] = (),
) -> TunedTechnique:
    """`technique` tuned on each of `seeds` over its grid `path` (strength → seed → run): the
    strength of lowest validation loss (ties: the weaker strength, the smaller change; on a
    joint grid over `axes`, the weaker on the first axis first)."""
    grid = tuple(sorted(path))
    chosen = {
        seed: min(grid, key=lambda s, seed=seed: (path[s][seed].summary[CHOSEN_ON], s))
        for seed in seeds
    }
    runs = {seed: on_test(path[chosen[seed]][seed]) for seed in seeds}
    measures = {key: {seed: runs[seed][key] for seed in seeds} for key in TUNED}
    return TunedTechnique(technique, grid, chosen, measures, axes)


def chosen_runs(technique: str, path: StrengthPath, seeds: Sequence[int]) -> VariantRuns:
    """The run each of `seeds` chose on `technique`'s path, as a variant of its own."""
    chosen = tune(technique, path, seeds).chosen
    return VariantRuns(technique, [path[chosen[seed]][seed] for seed in seeds])


# Trains the seeds it is given per technique (every strength of its grid) and for the baseline
# (under its variant's name): the new runs of each path, and the baseline's by seed.
GridTraining = Callable[[dict[str, list[int]]], tuple[Grids, dict[int, RunRecord]]]


@dataclass(frozen=True)
class TunedStudy:
    """What the tuned study trained (each path and the baseline, by seed) and what its rounds
    did: each technique's seeds and why it stopped."""

    paths: Grids
    baseline: dict[int, RunRecord]
    rounds: Rounds
    joint_axes: tuple[str, ...] = ()  # the techniques of the joint grid (`combined`)

    def tuned(self) -> list[TunedTechnique]:
        """Each technique tuned on the seeds the rounds gave it."""
        return [
            tune(t, path, self.rounds.seeds_of(t), self.joint_axes if t == COMBINED else ())
            for t, path in self.paths.items()
        ]


def tuned_until_decided(
    schedule: Schedule,
    paths: Grids,
    baseline: Mapping[int, RunRecord],
    settings: ReportConfig,
    fixed: int,
    train: GridTraining,
    joint_axes: tuple[str, ...] = (),
) -> TunedStudy:
    """Seeds added in rounds to each technique whose verdicts are undecided, from the first
    look's `paths` and `baseline` runs; `fixed` rows of the study's variants share the table."""
    name = settings.baseline
    if name in paths:
        raise DataError(f"the baseline variant's name {name!r} is also a technique's")
    paths = {t: {s: dict(runs) for s, runs in path.items()} for t, path in paths.items()}
    base = dict(baseline)

    def variants(need: Mapping[str, Sequence[int]]) -> dict[str, VariantRuns]:
        return {
            n: VariantRuns(n, [base[s] for s in seeds])
            if n == name
            else chosen_runs(n, paths[n], seeds)
            for n, seeds in need.items()
        }

    def one_round(need: dict[str, list[int]]) -> dict[str, VariantRuns]:
        added, added_base = train(need)
        for technique, path in added.items():
            for strength, runs in path.items():
                paths[technique][strength].update(runs)
        base.update(added_base)
        return variants(need)

    first = schedule.first()
    done = seeds_until_decided(
        schedule,
        variants({name: first, **dict.fromkeys(paths, first)}),
        name,
        settings.alpha,
        settings.equivalence.model_dump(),
        one_round,
        table=(len(paths) + fixed, len(TUNED)),
    )
    return TunedStudy(paths, base, done, joint_axes)


def _paired_prefix(order: Sequence[int], *sides: Mapping[int, object]) -> int:
    """How many seeds of `order`, from its start, every side has."""
    n = 0
    while n < len(order) and all(order[n] in side for side in sides):
        n += 1
    return n


def tuned_verdicts(
    tuned: Sequence[TunedTechnique],
    baseline: Mapping[int, RunRecord],
    settings: ReportConfig,
    fixed: Mapping[str, Mapping[int, RunRecord]] | None = None,
    schedule: Schedule | None = None,
) -> tuple[dict[str, dict[str, Comparison]], dict[str, dict[str, Comparison]]]:
    """Each tuned technique, and each technique at its `fixed` strength (technique → the
    runs of the study's variant that is it alone at one strength), against the baseline on
    each test measure, paired by seed; α covers all of them together. With seeds added in
    rounds (`schedule`), each is read at the looks its seeds went through. The two, by
    technique."""
    fixed = fixed or {}
    base = {seed: on_test(r) for seed, r in baseline.items()}
    adaptive = schedule is not None and schedule.adaptive
    order = schedule.seeds if schedule is not None else ()
    family = Family(
        len(tuned) + len(fixed),
        settings.alpha,
        order if adaptive else (),
        schedule.looks if adaptive and schedule is not None else (),
        len(TUNED),
    )
    margins = settings.equivalence.model_dump()

    def against(measures: Mapping[int, Mapping[str, float]]) -> dict[str, Comparison]:
        upto = _paired_prefix(order, measures, base) if adaptive else None
        return {
            key: against_baseline(
                key,
                {seed: m[key] for seed, m in measures.items()},
                {seed: m[key] for seed, m in base.items()},
                family,
                margins[DELTA_OF.get(key, key)],
                upto=upto,
            )
            for key in TUNED
        }

    at_fixed = {
        technique: against({seed: on_test(r) for seed, r in runs.items()})
        for technique, runs in fixed.items()
    }
    per_seed = {
        t.technique: {seed: {k: t.measures[k][seed] for k in TUNED} for seed in t.chosen}
        for t in tuned
    }
    return {t: against(m) for t, m in per_seed.items()}, at_fixed


def fixed_strength_variants(params: Params) -> dict[str, tuple[str, float]]:
    """Per technique with a strength path, the study's variant that is that technique alone at
    one strength (its knobs are the path's point there: the baseline's, the technique on), if
    one is: its name and
    strength: the technique at a hand-picked strength, beside it tuned."""
    base = params.variants[params.report.baseline]
    found: dict[str, tuple[str, float]] = {}
    for name, variant in params.variants.items():
        knobs = variant.model_dump(exclude_defaults=True)
        for technique, axis in SWEPT.items():
            strength = knobs.get(technique)
            if not isinstance(strength, float):
                continue
            # the path's point at that strength: the baseline variant with the technique on
            point = base.model_copy(update=axis.settings(strength))
            if knobs == point.model_dump(exclude_defaults=True):
                found.setdefault(technique, (name, strength))
    return found
