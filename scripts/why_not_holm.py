"""Why the verdicts use Bonferroni within a look and not Holm's step-down: a simulated case
where Holm, applied to the report's four-way verdicts, is wrong more often than α.

    python scripts/why_not_holm.py [--studies 20000]

Two comparisons, n seeds each, per-seed differences normal with sd 1 and δ = 1 sd: one true
difference exactly at δ (so "equivalent" is wrong), one at 0 (so "better" or "worse" is
wrong). Each comparison's p-value is the smaller of its two-sided test's against zero and its
equivalence test's (two one-sided tests against ±δ), and each verdict is read as the report
reads it. Holm's proof needs comparisons that cannot be wrong once rejected; here every
comparison can be wrong whatever its truth (an "equivalent" where the truth is at δ, a
direction where it is zero), and rejecting one relaxes the level of the other. Bonferroni
(the report's procedure) stays under α.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats


def tests(x: np.ndarray, delta: float) -> tuple[float, float, float]:
    """(two-sided p against 0, equivalence p against ±δ, mean) of per-seed differences."""
    n, mean = len(x), float(x.mean())
    se = float(x.std(ddof=1)) / np.sqrt(n)
    direction = 2 * stats.t.sf(abs(mean) / se, n - 1)
    equivalence = max(
        stats.t.sf((mean + delta) / se, n - 1), stats.t.sf((delta - mean) / se, n - 1)
    )
    return float(direction), float(equivalence), mean


def wrong(direction: float, equivalence: float, mean: float, level: float, truth: float) -> bool:
    """The report's verdict at `level` (equivalent first), wrong for `truth`?"""
    if equivalence <= level:
        return abs(truth) >= 1.0
    if direction <= level:
        return not (truth < 0 if mean < 0 else truth > 0)
    return False


def study(truth: list[float], n: int, alpha: float, rng: np.random.Generator) -> tuple[bool, bool]:
    """(Holm wrong, Bonferroni wrong) on one simulated study."""
    read = [tests(rng.normal(t, 1.0, n), 1.0) for t in truth]
    m = len(truth)
    bonferroni = any(wrong(*r, alpha / m, t) for r, t in zip(read, truth, strict=True))
    holm = False
    for k, i in enumerate(np.argsort([min(r[0], r[1]) for r in read])):
        level = alpha / (m - k)
        if min(read[i][0], read[i][1]) > level:
            break
        holm |= wrong(*read[i], level, truth[i])
    return holm, bonferroni


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20000)
    studies = parser.parse_args().studies
    rng = np.random.default_rng(1)
    alpha, n, truth = 0.05, 12, [1.0, 0.0]
    results = np.array([study(truth, n, alpha, rng) for _ in range(studies)])
    for name, column in (("Holm", 0), ("Bonferroni", 1)):
        wrong_count = int(results[:, column].sum())
        low = stats.beta.ppf(0.025, wrong_count, studies - wrong_count + 1)
        high = stats.beta.ppf(0.975, wrong_count + 1, studies - wrong_count)
        print(
            f"{name}: family-wise wrong {wrong_count / studies:.4f} [{low:.4f}, {high:.4f}] "
            f"(α {alpha}, truths {truth} sd, δ 1 sd, {n} seeds, {studies} studies)"
        )


if __name__ == "__main__":
    main()
