"""Paired comparisons over seeds.

A variant and the baseline trained with the same seed share the split, the initial weights'
random stream and the batch order, so their difference is taken seed by seed and summarised
with a Student-t interval over those differences; `detectable` is the smallest true difference
such an interval would tell from zero most of the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

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
        """True only where the interval excludes zero."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

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


def paired_difference(
    variant: dict[int, float], baseline: dict[int, float], confidence: float = CONFIDENCE
) -> PairedDifference:
    """Differences on the seeds both have; with one seed the interval is undefined (NaN)."""
    seeds = sorted(set(variant) & set(baseline))
    diffs = np.array([variant[s] - baseline[s] for s in seeds], dtype=np.float64)
    n = len(diffs)
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 0)
    mean = float(diffs.mean())
    if n < 2:
        return PairedDifference(mean, math.nan, math.nan, n)
    sd = float(diffs.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1) * sd / math.sqrt(n))
    return PairedDifference(mean, mean - half, mean + half, n, sd)


def detectable(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest true mean difference that a two-sided paired t-test at level `alpha` finds
    with probability `power`, for `n` seeds whose differences spread by `sd`:
    (t[1 − alpha/2] + t[power]) · sd / √n on n − 1 degrees of freedom (the usual
    approximation of the noncentral t; tests/test_verdicts.py checks it by simulation)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    quantiles = stats.t.ppf(1 - alpha / 2, df=n - 1) + stats.t.ppf(power, df=n - 1)
    return float(quantiles * sd / math.sqrt(n))


def mean_interval(values: list[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """The mean of `values` with its t-interval: the one-sample case of the paired interval
    (the differences against zero)."""
    return paired_difference(
        dict(enumerate(values)), dict.fromkeys(range(len(values)), 0.0), confidence
    )
