"""Paired seed-by-seed differences, checked against scipy's paired t-test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.analysis.stats import (
    SCIPY_NCT_UP_TO,
    PairedDifference,
    _two_sided_power_integrated,
    mean_interval,
    paired_difference,
    two_sided_power,
)

VARIANT = {0: 1.0, 1: 1.5, 2: 0.7, 3: 1.2}
BASELINE = {0: 0.8, 1: 1.1, 2: 0.9, 3: 0.6}


def test_matches_scipy_paired_t_interval() -> None:
    result = paired_difference(VARIANT, BASELINE)
    a = np.array([VARIANT[s] for s in range(4)])
    b = np.array([BASELINE[s] for s in range(4)])
    assert result.n == 4
    assert result.mean == pytest.approx(np.mean(a - b))  # 0.25
    assert result.mean == pytest.approx(0.25)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert result.low == pytest.approx(ci.low, rel=1e-9)
    assert result.high == pytest.approx(ci.high, rel=1e-9)
    # the same interval from the t distribution directly
    d = a - b
    low, high = stats.t.interval(0.95, df=3, loc=d.mean(), scale=stats.sem(d))
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-9)
    assert result.low < 0 < result.high
    assert result.clear is False


@pytest.mark.parametrize("confidence", [0.8, 0.99])
def test_other_confidence_levels(confidence: float) -> None:
    result = paired_difference(VARIANT, BASELINE, confidence=confidence)
    a = np.array(list(VARIANT.values()))
    b = np.array(list(BASELINE.values()))
    ci = stats.ttest_rel(a, b).confidence_interval(confidence)
    assert (result.low, result.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize(
    ("variant", "expected_sign"),
    [
        ({0: 2.0, 1: 2.1, 2: 1.9, 3: 2.05}, 1),
        ({0: -0.2, 1: -0.1, 2: -0.3, 3: -0.25}, -1),
    ],
)
def test_clear_when_the_interval_excludes_zero(variant: dict, expected_sign: int) -> None:
    baseline = {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}
    result = paired_difference(variant, baseline)
    assert result.clear is True
    if expected_sign > 0:
        assert result.low > 0
    else:
        assert result.high < 0
    assert result.to_json() == {
        "mean": result.mean,
        "low": result.low,
        "high": result.high,
        "n": 4,
        "clear": True,
    }


def test_only_shared_seeds_are_paired() -> None:
    variant = {**VARIANT, 9: 1000.0}  # seed 9 has no baseline partner
    baseline = {**BASELINE, 7: -1000.0}  # seed 7 has no variant partner
    assert paired_difference(variant, baseline) == paired_difference(VARIANT, BASELINE)
    # pairing is by seed, not by position
    shuffled = dict(reversed(list(BASELINE.items())))
    assert paired_difference(VARIANT, shuffled).mean == pytest.approx(0.25)


def test_one_seed_has_no_interval() -> None:
    result = paired_difference({0: 1.0, 1: 5.0}, {0: 0.25, 2: 3.0})
    assert result.n == 1
    assert result.mean == pytest.approx(0.75)
    assert math.isnan(result.low) and math.isnan(result.high)
    assert result.clear is False


def test_no_shared_seed() -> None:
    result = paired_difference({0: 1.0}, {1: 1.0})
    assert result.n == 0
    assert all(math.isnan(v) for v in (result.mean, result.low, result.high))
    assert result.clear is False


def test_identical_differences_give_a_zero_width_interval() -> None:
    result = paired_difference({0: 1.5, 1: 2.5}, {0: 1.0, 1: 2.0})
    assert (result.mean, result.low, result.high) == pytest.approx((0.5, 0.5, 0.5))
    assert result.clear is True


@pytest.mark.parametrize(
    ("low", "high", "n", "clear"),
    [
        (0.1, 0.3, 3, True),
        (-0.3, -0.1, 3, True),
        (-0.1, 0.3, 3, False),
        (0.0, 0.3, 3, False),  # touching zero is not clear
        (0.1, 0.3, 1, False),
    ],
)
def test_clear_property(low: float, high: float, n: int, clear: bool) -> None:
    assert PairedDifference(0.2, low, high, n).clear is clear


def test_mean_interval_matches_scipy_one_sample_interval() -> None:
    values = [0.31, 0.27, 0.35, 0.30, 0.29]
    result = mean_interval(values)
    low, high = stats.t.interval(0.95, df=4, loc=np.mean(values), scale=stats.sem(values))
    assert result.n == 5
    assert result.mean == pytest.approx(0.304)
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-9)
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize(("df", "nc"), [(1, 2.0e7), (1, 3.0e5), (2, 5.0e3)])
def test_the_power_far_beyond_scipys_noncentral_t_matches_simulation(df: int, nc: float) -> None:
    """Few seeds at a tiny α (2 seeds: α = 1e-6 over 21 comparisons), where scipy's noncentral
    t returns wrong tails: the power is P(|Z + nc| > c·S) for Z normal and S = √(χ²/df),
    counted over a million draws (standard error under 0.0005)."""
    critical = stats.t.ppf(1 - 1e-6 / 21 / 2, df)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(1_000_000)
    s = np.sqrt(rng.chisquare(df, 1_000_000) / df)
    simulated = np.mean(np.abs(z + nc) > critical * s)
    assert 0.01 < simulated < 0.99  # a probability the draws can resolve
    assert two_sided_power(critical, df, nc) == pytest.approx(simulated, abs=0.0025)


@pytest.mark.parametrize("df", [1, 2, 4, 9])
@pytest.mark.parametrize("nc", [0.5, 3.0, 30.0, SCIPY_NCT_UP_TO])
def test_below_the_switch_the_integral_and_scipy_agree(df: int, nc: float) -> None:
    """Where scipy's noncentral t holds, the direct integral gives the same power: the switch
    between the two changes no figure."""
    critical = stats.t.ppf(1 - 0.05 / 21 / 2, df)
    scipy_power = stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc)
    assert _two_sided_power_integrated(critical, df, nc) == pytest.approx(scipy_power, abs=1e-8)
