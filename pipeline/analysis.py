"""One comparison against the baseline, and the verdict it supports.

A variant and the baseline trained with the same seed share the split, the initial weights'
random stream and the batch order, so a change is taken seed by seed (`stats`). The
comparisons made on one measure form a family (`Family`): each gets a t-interval at
1 − α/(m·K) for m comparisons read at K planned looks (Bonferroni; K = 1 unless seeds are
added in rounds, `rounds`), so that with probability at least 1 − α every interval of the
family, at every look, holds its true difference at once. Each verdict reads its interval:

- better / worse (the metric's words): the interval excludes zero and is not within ±δ;
- equivalent: the interval lies within ±δ, δ being the smallest difference that matters;
- undecided: neither, with the smallest difference these seeds would detect 80 % of the time.

Every verdict of a family is then right together with probability at least 1 − α, whatever
the true differences are (tests/test_verdicts.py measures it by simulation). The gap report,
the strength paths and the cross-study comparison all compare through `against_baseline`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .metrics import METRICS, Metric
from .outputs import VariantRuns
from .stats import PairedDifference, detectable, paired_difference

EQUIVALENT = "equivalent"
UNDECIDED = "undecided"
TOO_FEW = "too few seeds to tell"
POWER = 0.8  # for the smallest detectable difference of an undecided verdict


@dataclass(frozen=True)
class Family:
    """The comparisons made on one measure: how many, at how many looks, and their
    family-wise error rate."""

    size: int
    alpha: float = 0.05
    looks: int = 1  # the planned looks of seeds added in rounds

    @property
    def level(self) -> float:
        """Each interval's share of α: α/(m·K) (Bonferroni over comparisons and looks)."""
        return self.alpha / (max(1, self.size) * self.looks)

    @property
    def confidence(self) -> float:
        return 1 - self.level


def verdict(metric: Metric, diff: PairedDifference, delta: float) -> str:
    """The verdict an interval supports, with δ the smallest difference that matters."""
    if diff.n < 2:
        return TOO_FEW
    if -delta < diff.low and diff.high < delta:
        return EQUIVALENT
    if diff.clear:
        better = (diff.mean < 0) == (metric.better == "lower")
        return metric.words[0] if better else metric.words[1]
    return UNDECIDED


@dataclass(frozen=True)
class Comparison:
    """mean(variant − baseline) of one metric over paired seeds: its interval corrected for
    the family, the uncorrected 95 % one beside it, and the verdict; `withheld` says why no
    verdict may be given (a side diverged on some seeds)."""

    metric: Metric
    diff: PairedDifference  # at the family's confidence
    raw: PairedDifference  # at 95 %, for one comparison on its own
    delta: float
    family: Family
    withheld: str | None = None

    @property
    def verdict(self) -> str:
        return self.withheld or verdict(self.metric, self.diff, self.delta)

    @property
    def detectable(self) -> float:
        """For an undecided verdict, the smallest difference these seeds would detect with 80 %
        power at the family's level; else NaN."""
        if self.verdict != UNDECIDED:
            return math.nan
        return detectable(self.diff.sd, self.diff.n, self.family.level, POWER)

    def to_json(self) -> dict[str, Any]:
        """The corrected interval (`low`, `high`), the uncorrected one (`raw_low`, `raw_high`),
        the verdict and what it rests on; numbers that do not exist are null."""
        entry = {
            **self.diff.to_json(),
            "sd": self.diff.sd,
            "confidence": self.family.confidence,
            "comparisons": self.family.size,
            "looks": self.family.looks,
            "raw_low": self.raw.low,
            "raw_high": self.raw.high,
            "delta": self.delta,
            "verdict": self.verdict,
            "detectable": self.detectable,
        }
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in entry.items()}


def against_baseline(
    key: str,
    variant: dict[int, float],
    baseline: dict[int, float],
    family: Family,
    delta: float,
    withheld: str | None = None,
) -> Comparison:
    """The change of metric `key` from the baseline, paired on the seeds both have, as one of
    `family`."""
    corrected = paired_difference(variant, baseline, family.confidence)
    raw = paired_difference(variant, baseline)
    return Comparison(METRICS[key], corrected, raw, delta, family, withheld)


def withheld(variant: VariantRuns, baseline: VariantRuns) -> str | None:
    """Why a comparison gets no verdict: a side diverged on some seeds, and its seeds that
    are left would flatter it."""
    for side in (variant, baseline):
        if side.diverged_seeds:
            return f"no verdict: {side.name} diverged on seed(s) {side.diverged_seeds}"
    return None


def compare_variants(
    variants: Sequence[VariantRuns],
    baseline: str,
    keys: Sequence[str],
    alpha: float,
    margins: Mapping[str, float],
    looks: int = 1,
) -> dict[str, dict[str, Comparison]]:
    """Every variant but the baseline against it, on each metric of `keys`; the variants'
    comparisons on one metric are a family, read at `looks` planned looks."""
    base = next(v for v in variants if v.name == baseline)
    others = [v for v in variants if v.name != baseline]
    family = Family(len(others), alpha, looks)
    return {
        v.name: {
            k: against_baseline(
                k, v.per_seed(k), base.per_seed(k), family, margins[k], withheld(v, base)
            )
            for k in keys
        }
        for v in others
    }


def ranking(variants: Sequence[VariantRuns], key: str = "best_val_loss") -> list[str]:
    """Variants from best to worst mean of `key`; a variant that diverged on some seed is left
    out (its other seeds would flatter it). Ties keep the given order."""
    ranked = [v for v in variants if not v.diverged_seeds]
    sign = 1.0 if METRICS[key].better == "lower" else -1.0
    return [v.name for v in sorted(ranked, key=lambda v: sign * v.mean_sd(key)[0])]
