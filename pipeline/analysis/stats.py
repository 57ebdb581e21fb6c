"""Paired comparisons over seeds.

A variant and the baseline trained with the same seed share the split, the initial weights'
random stream and the batch order, so their difference is taken seed by seed and summarised
with a Student-t interval over those differences; `detectable` is the smallest true difference
such an interval would tell from zero most of the time.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, optimize, special, stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """mean(variant − baseline) over paired seeds, with its 95 % t-interval."""

    mean: float
    low: float
    high: float
    n: int
    sd: float = math.nan  # of the per-seed differences

    @property
    def clear(self) -> bool:
        """True only where the interval excludes zero (and is one: intersected intervals of
        several looks that do not overlap are none)."""
        return self.n >= 2 and self.low <= self.high and (self.low > 0 or self.high < 0)

    def describe(self, digits: int = 3, scale: float = 1.0, signed: bool = True) -> str:
        """`mean [low, high]` for tables, scaled (100: percentage points); `mean (n=1)` where
        there is no interval."""
        form = f"{'+' if signed else ''}.{digits}f"
        if self.n < 2:
            return f"{self.mean * scale:{form}} (n={self.n})"
        return f"{self.mean * scale:{form}} [{self.low * scale:{form}}, {self.high * scale:{form}}]"

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> PairedDifference:
        """Back from `to_json` (extra keys, such as a verdict, are ignored)."""
        return cls(entry["mean"], entry["low"], entry["high"], entry["n"])

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "clear": self.clear,
        }


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile, kept: a study reads a few levels at a few seed counts, many times
    over (each look, each simulated study)."""
    return float(stats.t.ppf(p, df))


def paired_difference(
    variant: dict[int, float], baseline: dict[int, float], confidence: float = CONFIDENCE
) -> PairedDifference:
    """Differences on the seeds both have; with one seed the interval is undefined (NaN)."""
    return paired_intervals(variant, baseline, (confidence,))[0]


def paired_intervals(
    variant: dict[int, float], baseline: dict[int, float], confidences: tuple[float, ...]
) -> list[PairedDifference]:
    """`paired_difference` at each of `confidences`, the differences summed once. Plain
    Python, not numpy: for the few seeds of a study it is several times faster, and the
    simulations read millions of intervals."""
    diffs = [variant[s] - baseline[s] for s in sorted(variant.keys() & baseline.keys())]
    n = len(diffs)
    if n == 0:
        return [PairedDifference(math.nan, math.nan, math.nan, 0)] * len(confidences)
    mean = math.fsum(diffs) / n
    if n < 2:
        return [PairedDifference(mean, math.nan, math.nan, n)] * len(confidences)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    out = []
    for confidence in confidences:
        half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        out.append(PairedDifference(mean, mean - half, mean + half, n, sd))
    return out


def pairing_correlation(variant: dict[int, float], baseline: dict[int, float]) -> float:
    """Pearson's correlation of variant and baseline over the seeds both have: how much of a
    seed's spread the pairing takes out of the difference. NaN with fewer than 3 seeds, or
    where either side does not vary, or the two are the same numbers."""
    seeds = sorted(variant.keys() & baseline.keys())
    a, b = [variant[s] for s in seeds], [baseline[s] for s in seeds]
    if len(seeds) < 3 or a == b:
        return math.nan
    a_mean, b_mean = math.fsum(a) / len(a), math.fsum(b) / len(b)
    cross = math.fsum((x - a_mean) * (y - b_mean) for x, y in zip(a, b, strict=True))
    spread = math.sqrt(
        math.fsum((x - a_mean) ** 2 for x in a) * math.fsum((y - b_mean) ** 2 for y in b)
    )
    return cross / spread if spread > 0 else math.nan


def detectable(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest true mean difference that a two-sided paired t-test at level `alpha` finds
    with probability `power`, for `n` seeds whose differences spread by `sd`: exact, from the
    noncentral t on n − 1 degrees of freedom (tests/unit/analysis/test_comparisons.py checks it
    by simulation).
    """
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return float(_noncentrality(n, alpha, power) * sd / math.sqrt(n))


@functools.cache
def _noncentrality(n: int, alpha: float, power: float) -> float:
    """The noncentrality at which the test on `n` seeds at level `alpha` has `power`: it does
    not depend on the spread, so a study's many comparisons at one level share it."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(nc: float) -> float:  # power at noncentrality `nc`, less the power wanted
        return two_sided_power(critical, df, nc) - power

    high = critical + 10.0
    while shortfall(high) < 0:
        high *= 2
    return optimize.brentq(shortfall, 0.0, high, xtol=1e-10)


# Beyond this noncentrality scipy's noncentral t (Boost's series) stops converging where the
# degrees of freedom are few, as for 2 seeds at a tiny α: it warns, returns wrong tails, and
# takes up to a second a call. Below it, the two ways agree to 1e-8 (test_stats.py).
SCIPY_NCT_UP_TO = 1000.0


def two_sided_power(critical: float, df: int, nc: float) -> float:
    """P(|T| > critical) for T noncentral t with `df` degrees of freedom and noncentrality
    `nc`, the power of a two-sided t-test: scipy's noncentral t, or beyond `SCIPY_NCT_UP_TO`
    the same probability integrated directly."""
    if abs(nc) > SCIPY_NCT_UP_TO:
        return _two_sided_power_integrated(critical, df, nc)
    # The far tail as the upper tail at −nc: scipy's lower tail can be NaN where tiny.
    far = np.nan_to_num(stats.nct.sf(critical, df, -nc))
    return float(stats.nct.sf(critical, df, nc) + far)


def _two_sided_power_integrated(critical: float, df: int, nc: float) -> float:
    """T = (Z + nc) / S with Z standard normal and S = √(V/df), V chi-square on `df`, apart:
    P(|T| > c) = E_Z[P(S < |Z + nc| / c)], integrated over |Z| < 40 (beyond it Z's density
    is below 1e-340), either side of −nc, where |Z + nc| turns."""

    def within(z: float) -> float:  # P(S < |z + nc| / c), weighted by z's density
        density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        return density * float(special.chdtr(df, df * ((z + nc) / critical) ** 2))

    edges = sorted({-40.0, min(max(-nc, -40.0), 40.0), 40.0})
    return math.fsum(integrate.quad(within, a, b)[0] for a, b in itertools.pairwise(edges))


# Gauss–Legendre nodes on (0, 1): the quantiles of the seeds' sd that `decide_chance` averages
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(96)
_QUANTILES, _QUANTILE_WEIGHTS = (_NODES + 1) / 2, _WEIGHTS / 2


def decide_chance(difference: float, sd: float, n: int, alpha: float, delta: float) -> float:
    """The chance that `n` seeds decide a true `difference` (per-seed differences spreading by
    `sd`) one way or the other: the two-sided interval at level `alpha` excludes zero, or the
    equivalence test (each tail at `alpha`) puts the difference within ±`delta`. Exact but for
    the quadrature: given the seeds' sd s, the mean is normal and each route an interval of
    it; the chance is averaged over the quantiles of s, a scaled chi on n − 1 degrees of
    freedom."""
    if n < 2 or not (math.isfinite(difference) and math.isfinite(sd)) or sd <= 0:
        return math.nan
    df = n - 1
    s = sd * np.sqrt(stats.chi2.ppf(_QUANTILES, df) / df)
    away = t_quantile(1 - alpha / 2, df) / math.sqrt(n) * s  # decided: |mean| > away ...
    within = np.maximum(delta - t_quantile(1 - alpha, df) / math.sqrt(n) * s, 0.0)  # or < within
    mean = stats.norm(difference, sd / math.sqrt(n))
    undecided = mean.cdf(away) - mean.cdf(within) + mean.cdf(-within) - mean.cdf(-away)
    decided = np.where(within >= away, 1.0, 1.0 - undecided)
    return float(min(np.dot(decided, _QUANTILE_WEIGHTS), 1.0))


def seeds_needed(
    difference: float,
    sd: float,
    alpha: float,
    power: float = 0.8,
    delta: float = 0.0,
    most: int = 1000,
) -> int | None:
    """The fewest seeds that decide a true `difference` with probability `power`
    (`decide_chance`: told from zero by a two-sided paired t-test at level `alpha`, or put
    within ±`delta` by the equivalence test), the per-seed differences spreading by `sd`;
    None where no count up to `most` would, or nothing is known."""
    if not (math.isfinite(difference) and math.isfinite(sd)) or sd <= 0:
        return None
    if difference == 0 and delta <= 0:
        return None
    if decide_chance(difference, sd, most, alpha, delta) < power:
        return None
    low, high = 1, most  # the chance grows with n: the first n at or over `power`
    while high - low > 1:
        middle = (low + high) // 2
        if decide_chance(difference, sd, middle, alpha, delta) >= power:
            high = middle
        else:
            low = middle
    return high


def intersection(intervals: list[PairedDifference]) -> PairedDifference:
    """Intervals of one difference read at successive looks, as one: the last look's mean, n
    and sd, the bounds of all the intervals together (where they all hold, so does this).
    Where they do not overlap (some interval missed), low lies above high."""
    last = intervals[-1]
    read = [d for d in intervals if d.n >= 2]
    if not read:
        return last
    return PairedDifference(
        last.mean, max(d.low for d in read), min(d.high for d in read), last.n, last.sd
    )


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """The mean of `values` with its t-interval: the one-sample case of the paired interval
    (the differences against zero)."""
    return paired_difference(
        dict(enumerate(values)), dict.fromkeys(range(len(values)), 0.0), confidence
    )
