"""Each technique at its best strength: chosen on validation within every seed, judged on test.

A practitioner tunes a technique's strength before comparing it. Per seed, the strength of the
technique's grid with the lowest validation loss (at its best epoch) is chosen; that seed's
tuned result is the chosen run, whose test split was evaluated once, with the weights of its
best epoch. The choice reads validation only: a seed's test split is its own part of the pool,
apart from the training and validation splits the choice saw, so the test numbers of a chosen
run are as unbiased as any run's. Its validation numbers are not (the best of several looks
better than it is): the tuned verdicts rest on test measures only (`metrics.TUNED`).

The tuned techniques are one family: every technique on every test measure, α shared as in the
gap report (`comparisons.Family`), through the same `against_baseline`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.config import Params, ReportConfig
from ..core.errors import DataError
from ..core.metrics import TUNED
from ..core.records import RunRecord
from ..core.spec import RunSpec, sweep_spec
from ..core.techniques import SWEPT
from .comparisons import Comparison, Family, against_baseline

CHOSEN_ON = "best_val_loss"
# Each test measure's smallest difference that matters: the report's δ of its kind.
DELTA_OF = {"test_gap": "loss_gap_last", "test_loss": "best_val_loss"}


def trained_as_now(record: RunRecord | None, spec: RunSpec) -> bool:
    return record is not None and record.hyperparameters == spec.hyperparameters()


def grid_runs(
    params: Params, points: Mapping[tuple[str, float, int], RunRecord]
) -> dict[str, dict[float, dict[int, RunRecord]]]:
    """Each technique with strengths in params.yaml, from the strength paths' `points`
    (technique, strength, seed → run): strength → seed → its run, each seed of train.seeds
    trained with today's settings, or a DataError naming the seeds a point lacks."""
    seeds = params.train.seeds
    grids: dict[str, dict[float, dict[int, RunRecord]]] = {}
    for technique, strength in params.sweep.points():
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
                f"sweep point {technique}={strength:g} has no run with the settings of "
                f"params.yaml for seeds {missing} under sweeps/: run `make sweep`"
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
    grid: tuple[float, ...]
    chosen: dict[int, float]
    measures: dict[str, dict[int, float]]

    def wins(self) -> dict[float, int]:
        """How many seeds chose each strength of the grid."""
        return {s: sum(c == s for c in self.chosen.values()) for s in self.grid}

    def edge(self) -> float | None:
        """The end of the grid (its smallest or largest strength) that more than half of the
        seeds chose, where the best strength may lie beyond the grid; else None (and with fewer
        than three strengths, or one seed, where an end is no sign)."""
        for end in (min(self.grid), max(self.grid)):
            if (
                len(self.grid) > 2
                and len(self.chosen) > 1
                and 2 * self.wins()[end] > len(self.chosen)
            ):
                return end
        return None


def tune(
    technique: str, path: Mapping[float, Mapping[int, RunRecord]], seeds: Sequence[int]
) -> TunedTechnique:
    """`technique` tuned on each of `seeds` over its grid `path` (strength → seed → run): the
    strength of lowest validation loss (ties: the weaker strength, the smaller change)."""
    grid = tuple(sorted(path))
    chosen = {
        seed: min(grid, key=lambda s, seed=seed: (path[s][seed].summary[CHOSEN_ON], s))
        for seed in seeds
    }
    runs = {seed: on_test(path[chosen[seed]][seed]) for seed in seeds}
    measures = {key: {seed: runs[seed][key] for seed in seeds} for key in TUNED}
    return TunedTechnique(technique, grid, chosen, measures)


def tuned_verdicts(
    tuned: Sequence[TunedTechnique],
    baseline: Mapping[int, RunRecord],
    settings: ReportConfig,
    fixed: Mapping[str, Mapping[int, RunRecord]] | None = None,
) -> tuple[dict[str, dict[str, Comparison]], dict[str, dict[str, Comparison]]]:
    """Each tuned technique, and each technique at its `fixed` strength (technique → the
    runs of the study's variant that is it alone at one strength), against the baseline on
    each test measure, paired by seed; α covers all of them together. The two, by technique."""
    fixed = fixed or {}
    base = {seed: on_test(r) for seed, r in baseline.items()}
    family = Family(len(tuned) + len(fixed), settings.alpha, measures=len(TUNED))
    margins = settings.equivalence.model_dump()

    def against(measures: Mapping[str, Mapping[int, float]]) -> dict[str, Comparison]:
        return {
            key: against_baseline(
                key,
                dict(measures[key]),
                {seed: m[key] for seed, m in base.items()},
                family,
                margins[DELTA_OF.get(key, key)],
            )
            for key in TUNED
        }

    at_fixed = {}
    for technique, runs in fixed.items():
        measured = {seed: on_test(r) for seed, r in runs.items()}
        at_fixed[technique] = against({k: {s: m[k] for s, m in measured.items()} for k in TUNED})
    return {t.technique: against(t.measures) for t in tuned}, at_fixed


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
