"""One comparison against the baseline, and the words for what it shows.

A variant and the baseline trained with the same seed share the split, the initial weights'
random stream and the batch order, so a change is taken seed by seed (`stats`) and called a
change only where its interval excludes zero. The gap report, the strength paths and the
cross-study comparison all compare through `against_baseline`, and say it with `verdict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .metrics import METRICS, Metric
from .outputs import VariantRuns
from .stats import PairedDifference, paired_difference


def verdict(metric: Metric, diff: PairedDifference) -> str:
    """Plain words for one comparison; 'no clear difference' whenever the interval holds 0."""
    if diff.n < 2:
        return "too few seeds to tell"
    if diff.low == diff.high == 0:
        return "identical on every seed"
    if not diff.clear:
        return "no clear difference"
    better = (diff.mean < 0) == (metric.better == "lower")
    return metric.words[0] if better else metric.words[1]


@dataclass(frozen=True)
class Comparison:
    """mean(variant − baseline) of one metric over paired seeds, and its verdict; `withheld`
    says why no verdict may be given (a side diverged on some seeds)."""

    metric: Metric
    diff: PairedDifference
    withheld: str | None = None

    @property
    def verdict(self) -> str:
        return self.withheld or verdict(self.metric, self.diff)

    def to_json(self) -> dict[str, Any]:
        return {**self.diff.to_json(), "verdict": self.verdict}


def against_baseline(
    key: str, variant: dict[int, float], baseline: dict[int, float], withheld: str | None = None
) -> Comparison:
    """The change of metric `key` from the baseline, paired on the seeds both have."""
    return Comparison(METRICS[key], paired_difference(variant, baseline), withheld)


def withheld(variant: VariantRuns, baseline: VariantRuns) -> str | None:
    """Why a comparison gets no verdict: a side diverged on some seeds, and its seeds that
    are left would flatter it."""
    for side in (variant, baseline):
        if side.diverged_seeds:
            return f"no verdict: {side.name} diverged on seed(s) {side.diverged_seeds}"
    return None


def compare_variants(
    variants: Sequence[VariantRuns], baseline: str, keys: Sequence[str]
) -> dict[str, dict[str, Comparison]]:
    """Every variant but the baseline against it, on each metric of `keys`."""
    base = next(v for v in variants if v.name == baseline)
    return {
        v.name: {
            k: against_baseline(k, v.per_seed(k), base.per_seed(k), withheld(v, base)) for k in keys
        }
        for v in variants
        if v.name != baseline
    }


def ranking(variants: Sequence[VariantRuns], key: str = "best_val_loss") -> list[str]:
    """Variants from best to worst mean of `key`; a variant that diverged on some seed is left
    out (its other seeds would flatter it). Ties keep the given order."""
    ranked = [v for v in variants if not v.diverged_seeds]
    sign = 1.0 if METRICS[key].better == "lower" else -1.0
    return [v.name for v in sorted(ranked, key=lambda v: sign * v.mean_sd(key)[0])]
