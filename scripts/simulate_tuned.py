"""The tuned study's error rate and power, by simulation: studies drawn from a known model (no
training), run through the product's own tuning, rounds and verdicts
(`tuning.tuned_until_decided`, then `tuning.tuned_verdicts` on the chosen runs' test measures).

    python -m scripts.simulate_tuned [--studies 2000] [--seed 0]

The model of one study:

- seeds: `train.seeds` = 0–4, then `rounds: {max: 10, step: 5}` (seeds 5–9 for a technique still
  undecided after the first look, and for the baseline); the report's settings `ReportConfig()`
  (α 0.05 over every technique on every test measure, δ of each measure as in `DELTA_OF`);
- the baseline and 3 techniques, `a`, `b` and `c`, each with a grid of 4 strengths, every
  strength trained on every seed the technique has;
- a seed has an effect of its own, normal with sd 0.02, added to the losses of every run of that
  seed (baseline and every strength alike: what pairing by seed removes);
- a run's validation loss (at its best epoch, the 2nd of 3) and its test loss are 0.5 + the
  seed's effect + the run's true effect + each its own normal noise, sd 0.01;
- accuracy moves opposite to the loss, point for point: 0.9 − (loss − 0.5), on validation and
  on test alike; the train loss at the best epoch is 0.2 in every run, so the test gap
  (test loss − that train loss) moves with the test loss;
- the true effects: none for `b` and `c`; for `a`, −E on validation and test loss (+E on
  accuracy) at one strength of its grid, which one drawn per seed (uniformly, independently of
  everything else), and none at the other three.

Tuned within a seed, `a` picks its helping strength with probability p (the chance that −E plus
its noise is the lowest of 4 validation losses), so the true difference of the tuned `a` from the
baseline is −E·p on test loss and test gap and +E·p on test accuracy; `b` and `c` have 0 on
every measure. A verdict is wrong where it calls a direction (better, worse, closes or widens the
gap) that the truth does not have, or calls "equivalent" where the true difference exceeds the
measure's δ.

Prints the settings, then per scenario: the family-wise rate of a wrong verdict (any technique,
any test measure) with its 95 % Clopper–Pearson interval; how often `a` is called better on test
loss (power); how often a no-effect technique's chosen strengths have a lower mean validation
loss than the baseline's on the same seeds (the choice's flattery, which the verdicts never
read); and the seeds per technique.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

from pipeline.analysis.comparisons import EQUIVALENT, IDENTICAL
from pipeline.analysis.seed_rounds import Schedule
from pipeline.analysis.tuning import DELTA_OF, tuned_until_decided, tuned_verdicts
from pipeline.core.config import ReportConfig, SeedRounds
from pipeline.core.metrics import METRICS, TUNED
from pipeline.core.records import RunRecord

SETTINGS = ReportConfig()
SCHEDULE = Schedule.of(list(range(5)), SeedRounds(max=10, step=5))
TECHNIQUES = ("a", "b", "c")
HELPS = "a"
GRID = (0.1, 0.2, 0.4, 0.8)
SEED_SD = 0.02  # the effect a seed shares with every run of it
RUN_SD = 0.01  # each run's own noise, on validation and on test apart
SCENARIOS = (
    ("no technique helps", 0.0),
    ("a helps by 0.03, at one strength drawn per seed", 0.03),
    ("a helps by 0.06, at one strength drawn per seed", 0.06),
)


def accuracy(loss: float) -> float:
    return 0.9 - (loss - 0.5)


def run(variant: str, seed: int, val: float, test_loss: float) -> RunRecord:
    """A finished run of 3 epochs whose best epoch is the 2nd (train loss 0.2 there)."""
    history = [
        {"train_loss": 0.3, "val_loss": val + 0.1},
        {"train_loss": 0.2, "val_loss": val},
        {"train_loss": 0.1, "val_loss": val + 0.05},
    ]
    summary = {
        "best_val_loss": val,
        "best_epoch": 2.0,
        "best_val_accuracy": accuracy(val),
        "loss_gap_last": history[-1]["val_loss"] - history[-1]["train_loss"],
        "test_loss": test_loss,
        "test_accuracy": accuracy(test_loss),
    }
    return RunRecord(variant, seed, {}, "cpu", False, summary, history)


def picked(effect: float, strengths: int = len(GRID), sd: float = RUN_SD) -> float:
    """The chance that the helping strength, `effect` lower on validation, has the lowest
    validation loss of `strengths` (each with its own noise `sd`; the seed's effect is common)."""
    if effect == 0:
        return 1 / strengths
    shift = effect / sd

    def density(z: float) -> float:
        return stats.norm.pdf(z) * stats.norm.sf(z - shift) ** (strengths - 1)

    return integrate.quad(density, -math.inf, math.inf)[0]


def truths(effect: float) -> dict[str, dict[str, float]]:
    """Each tuned technique's true mean difference from the baseline, per test measure."""
    none = dict.fromkeys(TUNED, 0.0)
    shift = effect * picked(effect)
    helps = {"test_gap": -shift, "test_loss": -shift, "test_accuracy": shift}
    return {t: helps if t == HELPS else none for t in TECHNIQUES}


def wrong(verdict: str, key: str, truth: float) -> bool:
    """Whether `verdict` on `key` is wrong for a true difference `truth` (variant − baseline)."""
    metric = METRICS[key]
    good = truth < 0 if metric.better == "lower" else truth > 0
    bad = truth > 0 if metric.better == "lower" else truth < 0
    if verdict == metric.words[0]:
        return not good
    if verdict == metric.words[1]:
        return not bad
    if verdict == EQUIVALENT:
        return abs(truth) > SETTINGS.equivalence.model_dump()[DELTA_OF.get(key, key)]
    if verdict == IDENTICAL:
        return truth != 0
    return False  # undecided, too few seeds: no claim


@dataclass(frozen=True)
class Study:
    """What one simulated study found."""

    wrong: bool  # any verdict wrong, on any technique and test measure
    helps_better: bool  # `a` called better on test loss
    flattered: int  # no-effect techniques whose chosen val loss beat the baseline's, on average
    no_effect: int  # how many techniques had no effect
    seeds: int  # seeds, summed over the techniques


def study(effect: float, rng: np.random.Generator) -> Study:
    """One tuned study, `a` helping by `effect` at one strength per seed (0: no technique
    helps), through the rounds and the tuned verdicts."""
    seed_effect = {s: rng.normal(0, SEED_SD) for s in SCHEDULE.seeds}
    helping = {s: GRID[rng.integers(len(GRID))] for s in SCHEDULE.seeds}

    def draw(variant: str, seed: int, strength: float | None = None) -> RunRecord:
        true = -effect if variant == HELPS and strength == helping[seed] else 0.0
        common = 0.5 + seed_effect[seed] + true
        return run(variant, seed, common + rng.normal(0, RUN_SD), common + rng.normal(0, RUN_SD))

    def grids(need: dict[str, Sequence[int]]):
        return {
            t: {g: {s: draw(t, s, g) for s in seeds} for g in GRID}
            for t, seeds in need.items()
            if t != SETTINGS.baseline
        }

    def train(need: dict[str, list[int]]):
        added = {s: draw(SETTINGS.baseline, s) for s in need[SETTINGS.baseline]}
        return grids(need), added

    first = SCHEDULE.first()
    baseline = {s: draw(SETTINGS.baseline, s) for s in first}
    paths = grids(dict.fromkeys(TECHNIQUES, first))
    done = tuned_until_decided(SCHEDULE, paths, baseline, SETTINGS, 0, train)
    tuned = done.tuned()
    verdicts, _ = tuned_verdicts(tuned, done.baseline, SETTINGS, None, SCHEDULE)
    truth = truths(effect)
    no_effect = [t for t in tuned if effect == 0 or t.technique != HELPS]
    flattered = 0
    for t in no_effect:
        seeds = list(t.chosen)
        chosen = [done.paths[t.technique][t.chosen[s]][s].summary["best_val_loss"] for s in seeds]
        base = [done.baseline[s].summary["best_val_loss"] for s in seeds]
        flattered += bool(np.mean(chosen) < np.mean(base))
    said = [(t, key, c.verdict) for t, v in verdicts.items() for key, c in v.items()]
    return Study(
        wrong=any(wrong(verdict, key, truth[t][key]) for t, key, verdict in said),
        helps_better=verdicts[HELPS]["test_loss"].verdict == METRICS["test_loss"].words[0],
        flattered=flattered,
        no_effect=len(no_effect),
        seeds=sum(done.rounds.outcomes[t].seeds for t in TECHNIQUES),
    )


@dataclass(frozen=True)
class Tally:
    """The studies of one scenario, summed."""

    effect: float
    studies: list[Study]

    @property
    def fwer(self) -> float:
        return sum(s.wrong for s in self.studies) / len(self.studies)

    @property
    def power(self) -> float:
        return sum(s.helps_better for s in self.studies) / len(self.studies)

    @property
    def flattery(self) -> float:
        return sum(s.flattered for s in self.studies) / sum(s.no_effect for s in self.studies)

    @property
    def seeds(self) -> float:
        return sum(s.seeds for s in self.studies) / (len(self.studies) * len(TECHNIQUES))

    def row(self) -> str:
        n = len(self.studies)
        f = sum(s.wrong for s in self.studies)
        low = stats.beta.ppf(0.025, f, n - f + 1) if f else 0.0
        high = stats.beta.ppf(0.975, f + 1, n - f) if f < n else 1.0
        power = f"{self.power:.3f}" if self.effect else "–"
        return (
            f"{n} | {f / n:.3f} [{low:.3f}, {high:.3f}] | {power} | {self.flattery:.3f} "
            f"| {self.seeds:.2f}"
        )


def simulate(effect: float, studies: int, rng: np.random.Generator) -> Tally:
    return Tally(effect, [study(effect, rng) for _ in range(studies)])


def settings_line(studies: int) -> str:
    rounds = f"{{max: {len(SCHEDULE.seeds)}, step: {SCHEDULE.looks[1] - SCHEDULE.looks[0]}}}"
    margins = SETTINGS.equivalence
    return (
        f"{studies} studies per row; train.seeds {SCHEDULE.looks[0]}, rounds {rounds}; "
        f"{len(TECHNIQUES)} techniques × grid of {len(GRID)} strengths, tuned on val loss per "
        f"seed; α {SETTINGS.alpha} over {len(TECHNIQUES)} techniques × {len(TUNED)} test "
        f"measures; δ loss {margins.best_val_loss}, gap {margins.loss_gap_last}, accuracy "
        f"{margins.test_accuracy}; noise sd: seed {SEED_SD}, run {RUN_SD}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(settings_line(args.studies))
    print(
        "| scenario | studies | family-wise wrong [95 %] | a better on test loss "
        "| chosen val loss below baseline's (no-effect technique) | seeds per technique |"
    )
    print("|---|---|---|---|---|---|")
    rngs = np.random.default_rng(args.seed).spawn(len(SCENARIOS))
    for (name, effect), rng in zip(SCENARIOS, rngs, strict=True):
        print(f"| {name} | {simulate(effect, args.studies, rng).row()} |")


if __name__ == "__main__":
    main()
