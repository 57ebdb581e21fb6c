"""Simulated studies for the verdicts' evidence: drawn from known distributions (no
training), run through the real procedure (`seed_rounds.seeds_until_decided`, each round's seeds
drawn when it asks for them) and the report's own comparison (`Rounds.compare`),
on every measure of the report's table. Used by tests/unit/analysis/test_seed_rounds.py and
scripts/simulate_rounds.py (`make simulate`).

A study: a baseline and 7 variants; per run, the four measures the procedure reads (loss gap,
best val loss, best val accuracy, test accuracy) around each variant's true difference. The
noise is what real studies have: the baseline is as noisy as the variants; runs of one seed
share part of their noise (pairing); the measures of a run are correlated; and, in the heavy
noise, it is Student-t with 3 degrees of freedom and one variant loses a run. Truths are in
units of the per-seed difference's sd; δ is 1 sd on every measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.analysis.comparisons import EQUIVALENT, TOO_FEW, UNDECIDED
from pipeline.analysis.seed_rounds import DRIVING, Schedule, seeds_until_decided
from pipeline.core.config import SeedRounds
from pipeline.core.metrics import COMPARED, METRICS
from pipeline.core.records import RunRecord
from pipeline.outputs.variant_files import VariantRuns

ALPHA = 0.05
SD = 0.02  # of a per-seed difference, on every measure
DELTA = SD
MEASURES = ("loss_gap_last", "best_val_loss", "best_val_accuracy", "test_accuracy")
assert set(DRIVING) | set(COMPARED) == set(MEASURES)
# Correlations of one run's noise across MEASURES: a lower val loss goes with a smaller gap
# and higher accuracies.
CORRELATION = np.array(
    [
        [1.0, 0.6, -0.4, -0.3],
        [0.6, 1.0, -0.7, -0.4],
        [-0.4, -0.7, 1.0, 0.5],
        [-0.3, -0.4, 0.5, 1.0],
    ]
)
CHOLESKY = np.linalg.cholesky(CORRELATION)
# The share of a run's noise variance that runs of the same seed share: under per-seed splits the
# default study's variant–baseline correlations are +0.66 to +0.93 (docs/verdicts.md).
PAIRING = 0.8
VARIANTS = "abcdefg"


@dataclass(frozen=True)
class Noise:
    name: str
    tails: float = math.inf  # degrees of freedom of the multivariate t; inf: normal
    lost_run: bool = False  # one variant loses one run of the first round

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One unit-variance vector over MEASURES, correlated as CORRELATION."""
        z = CHOLESKY @ rng.standard_normal(len(MEASURES))
        if math.isinf(self.tails):
            return z
        w = rng.chisquare(self.tails) / self.tails
        return z / math.sqrt(w) * math.sqrt((self.tails - 2) / self.tails)


def direction(key: str) -> float:
    """A truth t (negative: the variant is better) as a difference on `key`: +t where lower is
    better, −t where higher is."""
    return 1.0 if METRICS[key].better == "lower" else -1.0


def study(truth: dict[str, float], schedule: Schedule, noise: Noise, rng: np.random.Generator):
    """One simulated study: the rounds' outcomes and the report's comparisons."""
    run_sd = SD / math.sqrt(2 * (1 - PAIRING))  # so that a per-seed difference spreads by SD
    shared: dict[int, np.ndarray] = {}
    lost = (VARIANTS[rng.integers(len(VARIANTS))], schedule.first()[1]) if noise.lost_run else None

    def run(name: str, seed: int) -> RunRecord:
        common = shared.setdefault(seed, noise.draw(rng))
        x = math.sqrt(PAIRING) * common + math.sqrt(1 - PAIRING) * noise.draw(rng)
        t = truth.get(name, 0.0) * SD
        summary = {k: direction(k) * t + run_sd * x[i] for i, k in enumerate(MEASURES)}
        return RunRecord(name, seed, {}, "cpu", False, summary, [])

    def draw(name: str, seeds: list[int]) -> VariantRuns:
        return VariantRuns(name, [run(name, s) for s in seeds if (name, s) != lost])

    first = {name: draw(name, schedule.first()) for name in ["baseline", *truth]}
    trained = {name: list(r.records) for name, r in first.items()}

    def train(need: dict[str, list[int]]) -> dict[str, VariantRuns]:
        new = {name: draw(name, seeds) for name, seeds in need.items()}
        for name, r in new.items():
            trained[name] += r.records
        return new

    margins = dict.fromkeys(COMPARED, DELTA)
    done = seeds_until_decided(schedule, first, "baseline", ALPHA, margins, train)
    final = [
        VariantRuns(name, [r for r in records if r.seed in done.seeds_of(name)])
        for name, records in trained.items()
    ]
    return done, done.compare(final, "baseline", COMPARED, margins)


def wrong(verdict: str, key: str, truth: float) -> bool:
    """Whether `verdict` on `key` is wrong for a variant whose true difference is `truth` sd."""
    d = direction(key) * truth
    better, worse = METRICS[key].words
    lower = METRICS[key].better == "lower"
    if verdict == better:
        return not (d < 0 if lower else d > 0)
    if verdict == worse:
        return not (d > 0 if lower else d < 0)
    if verdict == EQUIVALENT:
        return not abs(truth) * SD < DELTA
    return False


TRUTHS = {
    "null (all equal)": dict.fromkeys(VARIANTS, 0.0),
    "all at ±δ": dict(zip(VARIANTS, [1, -1, 1, -1, 1, -1, 1], strict=True)),
    "mix 0, ±0.5, ±1, 1.5, 2.5 sd": dict(
        zip(VARIANTS, [0, 0.5, -0.5, 1, -1, 1.5, 2.5], strict=True)
    ),
    "adversarial: 4 at 0, 3 at δ": dict(zip(VARIANTS, [0, 0, 0, 0, 1, 1, 1], strict=True)),
    "all −1.5 sd": dict.fromkeys(VARIANTS, -1.5),
}
NOISES = (Noise("normal"), Noise("t3, a lost run", tails=3.0, lost_run=True))


def schedules() -> dict[str, Schedule]:
    return {
        "5 fixed": Schedule(tuple(range(5)), (5,)),
        "rounds to 5, step 2": Schedule.of([0, 1, 2], SeedRounds(max=5, step=2)),
        "10 fixed": Schedule(tuple(range(10)), (10,)),
        "5, rounds to 10 (default)": Schedule.of(list(range(5)), SeedRounds(max=10, step=5)),
        "12 fixed": Schedule(tuple(range(12)), (12,)),
        "rounds to 12, step 3": Schedule.of([0, 1, 2], SeedRounds(max=12, step=3)),
    }


@dataclass
class Tally:
    studies: int = 0
    failed: int = 0
    decided: dict[str, int] | None = None
    comparisons: int = 0
    seeds: int = 0

    def add(self, truth: dict[str, float], done, diffs) -> None:
        self.decided = self.decided or dict.fromkeys(COMPARED, 0)
        self.studies += 1
        self.failed += any(
            wrong(diffs[v][k].verdict, k, t) for v, t in truth.items() for k in COMPARED
        )
        for k in COMPARED:
            self.decided[k] += sum(diffs[v][k].verdict not in (UNDECIDED, TOO_FEW) for v in truth)
        self.comparisons += len(truth)
        self.seeds += sum(done.outcomes[v].seeds for v in truth)

    def row(self) -> str:
        n, f = self.studies, self.failed
        low = stats.beta.ppf(0.025, f, n - f + 1) if f else 0.0
        high = stats.beta.ppf(0.975, f + 1, n - f)
        assert self.decided is not None
        return (
            f"{f / n:.3f} [{low:.3f}, {high:.3f}] "
            f"| {self.decided['best_val_loss'] / self.comparisons:.2f} "
            f"| {self.decided['test_accuracy'] / self.comparisons:.2f} "
            f"| {self.seeds / self.comparisons:.1f}"
        )


def too_many(studies: int, alpha: float = ALPHA) -> int:
    """The count of wrong studies above which a check of "rate ≤ α" fails: the 99th
    percentile of the count at a rate of exactly α, so a procedure at α fails it at most 1 %
    of the time (tests/unit/analysis/test_seed_rounds.py states how often it fails at 0.07)."""
    return int(stats.binom.ppf(0.99, studies, alpha))
