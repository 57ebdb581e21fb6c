"""The figures of docs/verdicts.md on seeds added in rounds, by simulation: studies drawn from
known normal distributions (no training), run through the real procedure
(`rounds.seeds_until_decided`) and the report's own comparison (`analysis.compare_variants`).

    python scripts/simulate_rounds.py [--studies 4000]

Prints, per schedule and truth, the family-wise rate of a wrong verdict with its 95 %
Clopper–Pearson interval, the share of comparisons decided, and the seeds used per variant.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from pipeline.analysis import EQUIVALENT, UNDECIDED, compare_variants
from pipeline.config import SeedRounds
from pipeline.metrics import METRICS
from pipeline.outputs import VariantRuns
from pipeline.records import RunRecord
from pipeline.rounds import DRIVING, Schedule, seeds_until_decided

ALPHA, DELTA, SD = 0.05, 0.02, 0.02
KEY = "best_val_loss"  # lower is better


def runs(name: str, values: dict[int, dict[str, float]]) -> VariantRuns:
    return VariantRuns(
        name, [RunRecord(name, s, {}, "cpu", False, v, []) for s, v in values.items()]
    )


def study(truth: dict[str, float], schedule: Schedule, rng: np.random.Generator):
    """One simulated study: the rounds' outcomes and the report's final comparisons."""

    def draw(name: str, seeds: list[int]) -> VariantRuns:
        mean, sd = (truth[name], SD) if name in truth else (0.0, 0.0)
        return runs(
            name, {s: {k: mean + sd * rng.standard_normal() for k in DRIVING} for s in seeds}
        )

    trained: dict[str, list[RunRecord]] = {}
    first = {name: draw(name, schedule.first()) for name in ["baseline", *truth]}
    for name, r in first.items():
        trained[name] = list(r.records)

    def train(need: dict[str, list[int]]) -> dict[str, VariantRuns]:
        new = {name: draw(name, seeds) for name, seeds in need.items()}
        for name, r in new.items():
            trained[name] += r.records
        return new

    margins = dict.fromkeys(DRIVING, DELTA)
    done = seeds_until_decided(schedule, first, "baseline", ALPHA, margins, train)
    final = [
        VariantRuns(name, [r for r in records if r.seed in done.seeds_of(name)])
        for name, records in trained.items()
    ]
    diffs = compare_variants(final, "baseline", DRIVING, ALPHA, margins, len(schedule.looks))
    return done, diffs


def rounds(most: int, step: int) -> Schedule:
    return Schedule.of([0, 1, 2], SeedRounds(max=most, step=step))


def wrong(verdict: str, truth: float) -> bool:
    better, worse = METRICS[KEY].words
    return (
        (verdict == better and not truth < 0)
        or (verdict == worse and not truth > 0)
        or (verdict == EQUIVALENT and not abs(truth) < DELTA)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4000)
    n = parser.parse_args().studies
    truths = {
        "null (all equal)": dict.fromkeys("abcdefg", 0.0),
        "all at δ": dict.fromkeys("abcdefg", DELTA),
        "mix 0, ±0.01, ±0.02, 0.03, 0.05": dict(
            zip("abcdefg", [0, 0.01, -0.01, 0.02, -0.02, 0.03, 0.05], strict=True)
        ),
        "all −1.5 sd": dict.fromkeys("abcdefg", -1.5 * SD),
    }
    schedules = {
        "3 fixed": Schedule((0, 1, 2), (3,)),
        "5 fixed": Schedule(tuple(range(5)), (5,)),
        "rounds to 5, step 2 (default)": rounds(5, 2),
        "rounds to 12, step 3": rounds(12, 3),
    }
    print(f"{n} studies per row; 7 variants; sd {SD}; δ {DELTA}; α {ALPHA}; measure {KEY}")
    print("| truth | seeds | family-wise wrong [95 %] | decided | seeds per variant |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for truth_name, truth in truths.items():
        for schedule_name, schedule in schedules.items():
            failed = decided = total = used = 0
            for _ in range(n):
                done, diffs = study(truth, schedule, rng)
                verdicts = {v: diffs[v][KEY].verdict for v in truth}
                failed += any(wrong(verdicts[v], t) for v, t in truth.items())
                decided += sum(v != UNDECIDED for v in verdicts.values())
                total += len(truth)
                used += sum(done.outcomes[v].seeds for v in truth)
            low = stats.beta.ppf(0.025, failed, n - failed + 1) if failed else 0.0
            high = stats.beta.ppf(0.975, failed + 1, n - failed)
            print(
                f"| {truth_name} | {schedule_name} | {failed / n:.3f} [{low:.3f}, {high:.3f}] "
                f"| {decided / total:.2f} | {used / total:.1f} |"
            )


if __name__ == "__main__":
    main()
