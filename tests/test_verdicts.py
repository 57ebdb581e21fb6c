"""The verdicts' error rates, by simulation: many studies drawn from known distributions (no
training), run through the real analysis code.

A study here is what the gap report sees on one measure: m variants, each with n per-seed
differences from the baseline, drawn from a normal distribution with a known mean (the true
difference) and sd. A verdict is wrong when it says better or worse and the truth is not on
that side of zero, or equivalent and the truth is not within ±δ. The family-wise error rate is
the share of studies with at least one wrong verdict; the procedure promises at most α.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.analysis import EQUIVALENT, UNDECIDED, Family, against_baseline
from pipeline.metrics import METRICS
from pipeline.stats import detectable

KEY = "best_val_loss"  # lower is better: "better" means a negative difference
WORDS = METRICS[KEY].words
ALPHA = 0.05
STUDIES = 2000


def verdicts(truth: list[float], n: int, sd: float, delta: float, rng) -> list[str]:
    """The verdicts of one simulated study: one comparison per true difference in `truth`."""
    family = Family(len(truth), ALPHA)
    baseline = dict.fromkeys(range(n), 0.0)
    out = []
    for mean in truth:
        diffs = rng.normal(mean, sd, size=n)
        out.append(against_baseline(KEY, dict(enumerate(diffs)), baseline, family, delta).verdict)
    return out


def wrong(verdict: str, truth: float, delta: float) -> bool:
    if verdict == WORDS[0]:  # better: the truth must be below zero
        return not truth < 0
    if verdict == WORDS[1]:
        return not truth > 0
    if verdict == EQUIVALENT:
        return not abs(truth) < delta
    return False  # undecided claims nothing


def upper_bound(errors: int, trials: int, confidence: float = 0.99) -> float:
    """One-sided Clopper–Pearson upper bound of a rate seen `errors` times in `trials`."""
    return float(stats.beta.ppf(confidence, errors + 1, trials - errors))


def lower_bound(successes: int, trials: int, confidence: float = 0.99) -> float:
    return float(stats.beta.ppf(1 - confidence, successes, trials - successes + 1))


@pytest.mark.parametrize(
    ("truth", "n", "delta"),
    [
        ([0.0] * 7, 3, 0.02),  # the null: every variant equal to the baseline
        ([0.0] * 7, 10, 0.02),
        ([0.02] * 7, 10, 0.02),  # every truth exactly at the margin: "equivalent" is wrong
        ([0.0, 0.0, 0.01, -0.01, 0.02, -0.02, 0.05], 6, 0.02),  # a mix
    ],
)
def test_the_family_wise_error_rate_stays_at_or_below_alpha(truth, n, delta) -> None:
    rng = np.random.default_rng(1)
    sd = 0.02
    failed = sum(
        any(
            wrong(v, t, delta)
            for v, t in zip(verdicts(truth, n, sd, delta, rng), truth, strict=True)
        )
        for _ in range(STUDIES)
    )
    # The rate may be well below α (Bonferroni is conservative); it must not be above it
    # beyond Monte-Carlo error: the lower end of its 99 % interval stays at or under α.
    assert failed == 0 or lower_bound(failed, STUDIES) <= ALPHA, failed / STUDIES


@pytest.mark.parametrize(("n", "effect_in_sd"), [(10, 1.5), (20, 1.0), (5, 3.0)])
def test_power_for_a_known_effect_matches_the_noncentral_t(n: int, effect_in_sd: float) -> None:
    """The chance that a real difference is called better, against its exact value: the
    noncentral t with n − 1 degrees of freedom at the family's level (what docs/verdicts.md
    tabulates)."""
    rng = np.random.default_rng(2)
    m, sd = 7, 0.02
    truth = [-effect_in_sd * sd] + [0.0] * (m - 1)
    found = sum(verdicts(truth, n, sd, 1e-9, rng)[0] == WORDS[0] for _ in range(STUDIES))
    level = ALPHA / m
    critical = stats.t.ppf(1 - level / 2, df=n - 1)
    exact = float(stats.nct.sf(critical, df=n - 1, nc=effect_in_sd * math.sqrt(n)))
    assert lower_bound(found, STUDIES) <= exact <= upper_bound(found, STUDIES)


def test_the_detectable_difference_is_found_about_80_percent_of_the_time() -> None:
    """At a true difference equal to `detectable` for the true sd, a paired t-test at the
    family's level finds it with probability close to 80 % (the formula is the usual
    approximation of the noncentral t: within 3 points of it here)."""
    n, m, sd = 8, 7, 0.02
    effect = detectable(sd, n, ALPHA / m, 0.8)
    critical = stats.t.ppf(1 - ALPHA / m / 2, df=n - 1)
    exact = float(stats.nct.sf(critical, df=n - 1, nc=effect / sd * math.sqrt(n)))
    assert exact == pytest.approx(0.8, abs=0.03)


def test_an_undecided_verdict_names_the_difference_its_seeds_would_detect() -> None:
    baseline = dict.fromkeys(range(4), 0.0)
    variant = {0: 0.01, 1: -0.03, 2: 0.02, 3: -0.01}
    c = against_baseline(KEY, variant, baseline, Family(7, ALPHA), 0.001)
    assert c.verdict == UNDECIDED
    d = np.array(list(variant.values()))
    level = ALPHA / 7
    expected = (stats.t.ppf(1 - level / 2, 3) + stats.t.ppf(0.8, 3)) * d.std(ddof=1) / 2
    assert c.detectable == pytest.approx(expected)
    assert c.to_json()["detectable"] == pytest.approx(expected)


def test_the_interval_is_corrected_for_the_family_and_the_raw_one_kept() -> None:
    baseline = dict.fromkeys(range(5), 0.0)
    variant = {0: -0.05, 1: -0.04, 2: -0.06, 3: -0.03, 4: -0.05}
    c = against_baseline(KEY, variant, baseline, Family(7, ALPHA), 0.02)
    d = np.array(list(variant.values()))
    corrected = stats.t.interval(1 - ALPHA / 7, 4, loc=d.mean(), scale=stats.sem(d))
    raw = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert (c.diff.low, c.diff.high) == pytest.approx(corrected)
    assert (c.raw.low, c.raw.high) == pytest.approx(raw)
    entry = c.to_json()
    assert entry["confidence"] == pytest.approx(1 - ALPHA / 7)
    assert entry["comparisons"] == 7 and entry["delta"] == 0.02
    assert entry["detectable"] is None  # decided: nothing to state


@pytest.mark.parametrize(
    ("variant", "delta", "expected"),
    [
        ({0: -0.5, 1: -0.52, 2: -0.49}, 0.02, WORDS[0]),  # far below zero: better
        ({0: 0.5, 1: 0.52, 2: 0.49}, 0.02, WORDS[1]),  # worse
        ({0: 0.001, 1: -0.001, 2: 0.0}, 0.05, EQUIVALENT),  # all within ±δ
        ({0: 0.0, 1: 0.0, 2: 0.0}, 0.02, EQUIVALENT),  # identical on every seed
        ({0: -0.011, 1: -0.010, 2: -0.012}, 0.05, EQUIVALENT),  # real but smaller than δ
        ({0: 0.1, 1: -0.1, 2: 0.05}, 0.02, UNDECIDED),
    ],
)
def test_the_four_verdicts(variant: dict, delta: float, expected: str) -> None:
    baseline = dict.fromkeys(range(3), 0.0)
    assert against_baseline(KEY, variant, baseline, Family(1, ALPHA), delta).verdict == expected
