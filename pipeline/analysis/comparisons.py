"""One comparison against the baseline, and the verdict it supports.

A variant and the baseline trained with the same seed share the split, the initial weights'
random stream and the batch order, so a change is taken seed by seed (`stats`). The
comparisons of one table form a family (`Family`): m comparisons on each of M measures, each
with a share α/(m·M) of the error rate (Bonferroni), so that the table's verdicts hold
together. Where seeds are added in rounds (`seed_rounds`), that share is spent over the planned
looks, most at the last (`Family.shares`), and a comparison's interval is the intersection of
its intervals at the looks it was read at, so a verdict once decided stays decided. Each
verdict reads its intervals:

- equivalent: the equivalence test's interval (two one-sided tests, each at the look's level:
  each tail at the level) lies within ±δ, δ being the smallest difference that matters;
- better / worse (the metric's words): else, the interval (each tail at half the level)
  excludes zero;
- undecided: neither, with the smallest difference these seeds would detect 80 % of the time.

Whatever the true difference, a comparison's verdict is wrong only where one of its intervals
misses the truth on the side that matters, with probability at most α/(m·M) over all its looks;
so every verdict of a family is right together with probability at least 1 − α, however the
rounds stopped (tests/unit/analysis/test_comparisons.py and test_seed_rounds.py measure it by
simulation; docs/verdicts.md). The gap report, the strength paths and the cross-study comparison all
compare through `against_baseline`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.metrics import METRICS, Metric
from ..outputs.variant_files import VariantRuns
from .stats import (
    CONFIDENCE,
    PairedDifference,
    detectable,
    intersection,
    paired_intervals,
    seeds_needed,
)

EQUIVALENT = "equivalent"
UNDECIDED = "undecided"
TOO_FEW = "too few seeds to tell"
# Equal on every seed, bit for bit: the same weights by construction (early stopping's best
# epoch is the baseline's own), not a finding; no interval, no "equivalent".
IDENTICAL = "identical on every seed"
POWER = 0.8  # for the smallest detectable difference of an undecided verdict
# α spent over the looks as the power family α·t^ρ of the share t of the seeds (Kim & DeMets
# 1987; ρ = 3 is close to O'Brien–Fleming): little at the first looks, where few seeds can
# decide little, most at the last.
SPENDING = 3.0


@dataclass(frozen=True)
class Family:
    """The comparisons of one table: how many per measure (`size`), on how many measures,
    their family-wise error rate α, and, where seeds are added in rounds, the planned looks:
    the seeds in the order they are added and the seed counts the verdicts are read at (none:
    one look at every seed)."""

    size: int
    alpha: float = 0.05
    seeds: tuple[int, ...] = ()
    looks: tuple[int, ...] = ()
    measures: int = 1  # the measures of one table, whose verdicts α covers together

    @property
    def level(self) -> float:
        """Each comparison's share of α, over all its looks: α/(m·M) for m comparisons on
        each of M measures (Bonferroni)."""
        return self.alpha / (max(1, self.size) * self.measures)

    @property
    def confidence(self) -> float:
        return 1 - self.level

    @functools.cache  # noqa: B019 (a frozen, hashable plan: a study reads it thousands of times)
    def shares(self) -> tuple[float, ...]:
        """The level of each look's interval: α/(m·M) spent as (t_k^ρ − t_{k−1}^ρ), t_k the share
        of the seeds read at look k. They sum to α/(m·M): with probability at least 1 − α every
        interval of the family, at every look, holds its true difference (the union bound),
        whatever the data make the rounds do."""
        if not self.looks:
            return (self.level,)
        spent = [(n / self.looks[-1]) ** SPENDING for n in self.looks]
        return tuple(self.level * (b - a) for a, b in zip([0.0, *spent], spent, strict=False))

    @functools.cache  # noqa: B019
    def reads(self, upto: int | None = None) -> tuple[tuple[frozenset[int] | None, float], ...]:
        """The looks a comparison read at `upto` seeds has been through: each look's seeds
        (None: every seed) and its level."""
        if not self.looks:
            return ((None, self.level),)
        upto = self.looks[-1] if upto is None else upto
        return tuple(
            (frozenset(self.seeds[:n]), share)
            for n, share in zip(self.looks, self.shares(), strict=True)
            if n <= upto
        ) or ((frozenset(self.seeds[: self.looks[0]]), self.shares()[0]),)


def verdict(
    metric: Metric,
    diff: PairedDifference,
    delta: float,
    equivalence: PairedDifference | None = None,
) -> str:
    """The verdict the intervals support, with δ the smallest difference that matters: `diff`
    for a direction (each tail at half the level), `equivalence` for a TOST (each tail at the
    level; by default `diff`)."""
    equivalence = diff if equivalence is None else equivalence
    if diff.n < 2:
        return TOO_FEW
    if diff.low > diff.high or equivalence.low > equivalence.high:
        return UNDECIDED  # the looks' intervals do not overlap: one of them missed
    if -delta < equivalence.low and equivalence.high < delta:
        return EQUIVALENT
    if diff.clear:  # the side of zero the interval lies on (the last look's mean may not)
        better = (diff.high < 0) == (metric.better == "lower")
        return metric.words[0] if better else metric.words[1]
    return UNDECIDED


@dataclass(frozen=True)
class Comparison:
    """mean(variant − baseline) of one metric over paired seeds: its interval corrected for
    the family (intersected over the looks it was read at), the interval of its equivalence
    test, the uncorrected 95 % one, and the verdict; `withheld` says why no verdict may be
    given (a side diverged on some seeds)."""

    metric: Metric
    diff: PairedDifference  # at each look's level, intersected over the looks
    raw: PairedDifference  # at 95 %, for one comparison on its own, at the last look
    delta: float
    family: Family
    withheld: str | None = None
    equivalence: PairedDifference | None = None  # each tail at the level: the TOST's interval
    last_level: float = math.nan  # the level of the last look read
    looks_read: int = 1
    identical: bool = False  # equal to the baseline on every paired seed, bit for bit

    @property
    def verdict(self) -> str:
        if self.withheld:
            return self.withheld
        if self.identical:
            return IDENTICAL
        return verdict(self.metric, self.diff, self.delta, self.equivalence)

    @property
    def detectable(self) -> float:
        """For an undecided verdict, the smallest difference these seeds would detect with 80 %
        power at the last look's level; else NaN."""
        if self.verdict != UNDECIDED:
            return math.nan
        return detectable(self.diff.sd, self.diff.n, self.last_level, POWER)

    @property
    def seeds_to_decide(self) -> int | None:
        """For an undecided verdict, how many seeds one look would need to decide the
        difference seen here, were it true (its sd too), 80 % of the time at the family's
        level: tell it from zero, or put it within ±δ."""
        if self.verdict != UNDECIDED:
            return None
        return seeds_needed(self.diff.mean, self.diff.sd, self.family.level, POWER, self.delta)

    def to_json(self) -> dict[str, Any]:
        """The corrected interval (`low`, `high`), the equivalence test's (`equivalence_low`,
        `equivalence_high`), the uncorrected one (`raw_low`, `raw_high`), the verdict and what
        it rests on; numbers that do not exist are null."""
        equivalence = self.equivalence or self.diff
        entry = {
            **self.diff.to_json(),
            "sd": self.diff.sd,
            "confidence": self.family.confidence,
            "comparisons": self.family.size,
            "measures": self.family.measures,
            "looks": len(self.family.looks) or 1,
            "looks_read": self.looks_read,
            "equivalence_low": equivalence.low,
            "equivalence_high": equivalence.high,
            "raw_low": self.raw.low,
            "raw_high": self.raw.high,
            "delta": self.delta,
            "verdict": self.verdict,
            "detectable": self.detectable,
            "seeds_to_decide": self.seeds_to_decide,
        }
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in entry.items()}


def against_baseline(
    key: str,
    variant: dict[int, float],
    baseline: dict[int, float],
    family: Family,
    delta: float,
    withheld: str | None = None,
    upto: int | None = None,
) -> Comparison:
    """The change of metric `key` from the baseline, paired on the seeds both have, as one of
    `family`, read at every look up to `upto` seeds (default: all of them)."""
    directional, equivalence = [], []
    reads = family.reads(upto)
    for i, (seeds, level) in enumerate(reads):
        v = variant if seeds is None else {s: x for s, x in variant.items() if s in seeds}
        b = baseline if seeds is None else {s: x for s, x in baseline.items() if s in seeds}
        # The last look's seeds also give the raw interval: the differences summed once.
        raw_level = (CONFIDENCE,) if i == len(reads) - 1 else ()
        two_sided, tost, *last = paired_intervals(v, b, (1 - level, 1 - 2 * level, *raw_level))
        directional.append(two_sided)
        equivalence.append(tost)
    [raw] = last
    paired = set(v) & set(b)
    return Comparison(
        METRICS[key],
        intersection(directional),
        raw,
        delta,
        family,
        withheld,
        intersection(equivalence),
        level,
        len(reads),
        bool(paired) and all(v[s] == b[s] for s in paired),
    )


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
    seeds: Sequence[int] = (),
    looks: Sequence[int] = (),
    upto: Mapping[str, int] | None = None,
) -> dict[str, dict[str, Comparison]]:
    """Every variant but the baseline against it, on each metric of `keys`; α covers every
    verdict of the table (the variants' comparisons on each of the metrics). With seeds added
    in rounds (`seeds` in the order they were added, read at `looks`), each variant is read at
    the looks up to its own seed count (`upto`)."""
    base = next(v for v in variants if v.name == baseline)
    others = [v for v in variants if v.name != baseline]
    family = Family(len(others), alpha, tuple(seeds), tuple(looks), len(keys))
    return {
        v.name: {
            k: against_baseline(
                k,
                v.per_seed(k),
                base.per_seed(k),
                family,
                margins[k],
                withheld(v, base),
                (upto or {}).get(v.name),
            )
            for k in keys
        }
        for v in others
    }


def ranking(variants: Sequence[VariantRuns], key: str = "best_val_loss") -> list[str]:
    """Variants from best to worst mean of `key` over the seeds they all have (a paired
    ranking: rounds give variants different seeds, and a mean over other seeds is not
    comparable); a variant that diverged on some seed is left out (its other seeds would
    flatter it). Ties keep the given order."""
    ranked = [v for v in variants if not v.diverged_seeds]
    if not ranked:
        return []
    common = set.intersection(*(set(v.per_seed(key)) for v in ranked))
    sign = 1.0 if METRICS[key].better == "lower" else -1.0

    def mean(v: VariantRuns) -> float:
        values = [x for s, x in v.per_seed(key).items() if s in common]
        return sign * float(np.mean(values)) if values else math.inf

    return [v.name for v in sorted(ranked, key=mean)]
