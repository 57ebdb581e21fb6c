"""Each variant's means over seeds, with the t-interval of each, and its mean learning
curves: what the variant's MLflow parent run shows (`tracking.variant_runs`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from ..analysis.stats import mean_interval
from ..core.metrics import REPORT_SUMMARY
from ..outputs.variant_files import VariantRuns
from ..tracking.variant_runs import VariantRun


def variant_run(v: VariantRuns, run_id_of: Callable[[int], str | None]) -> VariantRun:
    """`v`'s parent run: per measure of the report its mean, and with two seeds or more the
    bounds of the 95 % t-interval of that mean; per epoch the mean of each logged number
    over the seeds that trained that epoch; the runs of its seeds (`run_id_of(seed)`)."""
    metrics: dict[str, float] = {"n_seeds": float(len(v.records))}
    for key in REPORT_SUMMARY:
        m = mean_interval(list(v.per_seed(key).values()))
        metrics[key] = m.mean
        if m.n >= 2:
            metrics[f"{key}_low"], metrics[f"{key}_high"] = m.low, m.high
    rows = pd.DataFrame([row for r in v.records for row in r.history_rows()])
    means = rows.drop(columns=["variant", "seed"]).groupby("epoch").mean()
    curves = {key: {int(e): float(x) for e, x in means[key].items()} for key in means.columns}
    seeds = [run_id_of(r.seed) for r in v.records]
    return VariantRun(v.name, metrics, curves, [s for s in seeds if s])


def variant_runs(
    variants: Sequence[VariantRuns], run_id_of: Callable[[str, int], str | None]
) -> list[VariantRun]:
    return [variant_run(v, lambda seed, name=v.name: run_id_of(name, seed)) for v in variants]
