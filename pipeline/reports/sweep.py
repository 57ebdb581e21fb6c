"""The strength paths' report: each technique alone on top of the baseline, at each strength
of params.yaml's `sweep`, for every seed; strength 0 is the study's own baseline runs (same
seeds, same settings). Per technique: val loss, train loss, loss gap and test accuracy against
the strength with seed bands, and the strength of lowest val loss with its interval and its
change against the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.comparisons import Family, against_baseline
from ..analysis.stats import PairedDifference, mean_interval
from ..analysis.tuning import grid_runs
from ..core.config import Params, ReportConfig, Strength
from ..core.errors import DataError
from ..core.metrics import METRICS, PATH_METRICS
from ..core.records import RunRecord
from ..core.techniques import SWEPT
from ..outputs.variant_files import VariantRuns
from .tables import interval, table


@dataclass(frozen=True)
class PathPoint:
    """One strength of one technique: its per-seed summaries."""

    strength: float  # 0.0: the baseline
    per_seed: dict[int, dict[str, float]]

    def values(self, key: str) -> dict[int, float]:
        return {seed: s[key] for seed, s in self.per_seed.items()}

    def mean(self, key: str) -> float:
        return float(np.mean(list(self.values(key).values())))


def strength_paths(
    params: Params, baseline: VariantRuns, points: dict[tuple[str, Strength, int], RunRecord]
) -> dict[str, list[PathPoint]]:
    """Per technique with strengths in params.yaml: the baseline, then each strength. A point
    counts only if it was trained with today's settings (`tuning.grid_runs`)."""
    seeds = params.train.seeds
    base = {r.seed: r.summary for r in baseline.records}
    missing_base = [s for s in seeds if s not in base]
    if missing_base:
        raise DataError(f"{baseline.name} has no run for seeds {missing_base}: run dvc repro")
    return {
        technique: [
            PathPoint(0.0, {s: base[s] for s in seeds}),
            *(
                PathPoint(strength, {seed: r.summary for seed, r in runs.items()})
                for strength, runs in grid.items()
            ),
        ]
        for technique, grid in grid_runs(params, points).items()
        if technique in SWEPT  # the joint grid (`combined`) is no path: the tuned report's
    }


def best_point(points: list[PathPoint]) -> PathPoint:
    """The strength of lowest mean val loss (the baseline included)."""
    return min(points, key=lambda p: p.mean("best_val_loss"))


def summarise(paths: dict[str, list[PathPoint]], settings: ReportConfig) -> dict[str, Any]:
    """Per technique, each strength against the baseline: its strengths' changes on one
    metric are a family, so the intervals hold together, the best strength's included
    although it was picked on these runs."""
    margins = settings.equivalence.model_dump()
    out: dict[str, Any] = {}
    for technique, points in paths.items():
        base = points[0]
        family = Family(len(points) - 1, settings.alpha)
        rows = []
        row_of: dict[float, dict[str, Any]] = {}  # by strength
        for p in points:
            row: dict[str, Any] = {"strength": p.strength, "n": len(p.per_seed)}
            for key in PATH_METRICS:
                row[key] = mean_interval(list(p.values(key).values())).to_json()
                if p is not base:
                    change = against_baseline(
                        key, p.values(key), base.values(key), family, margins[key]
                    )
                    row[f"change_{key}"] = change.to_json()
            row_of[p.strength] = row
            rows.append(row)
        best = best_point(points)
        out[technique] = {
            "points": rows,
            "best_strength": best.strength,
            "best_val_loss": mean_interval(list(best.values("best_val_loss").values())).to_json(),
            "best_change_val_loss": (
                None if best is base else row_of[best.strength]["change_best_val_loss"]
            ),
        }
    return out


def _value(d: dict[str, Any], key: str) -> str:
    return interval(PairedDifference.from_json(d), METRICS[key], signed=False)


def _change(d: dict[str, Any], key: str) -> str:
    """The change against the baseline with its verdict."""
    return f"{interval(PairedDifference.from_json(d), METRICS[key])} ({d['verdict']})"


def markdown(summary: dict[str, Any], params: Params) -> str:
    seeds = params.train.seeds
    lines = [
        "# Strength paths",
        "",
        f"Each technique on top of `{params.report.baseline}` at the strengths in params.yaml "
        f"(`sweep`), seeds {seeds} (n = {len(seeds)} per point); strength 0 is the baseline's "
        "own runs. Cells: mean [95 % t-interval of the mean over seeds]. Changes are against "
        "strength 0, paired by seed, with intervals corrected for the number of strengths of "
        "the technique (Bonferroni: one measure's changes for one technique hold together with "
        f"{1 - params.report.alpha:.0%} confidence) and the verdicts of the gap report: "
        "equivalent where two one-sided tests put the change within ±δ, else better or worse "
        "where the interval excludes zero, else undecided. Val loss is at the best epoch (the "
        "weights the test score uses); train loss and gap at the last epoch.",
        "",
        "The best strength is picked on the same runs whose val loss it reports: its corrected "
        "interval still holds, but its mean tends to flatter it; confirm a choice on new seeds "
        "(add them to `train.seeds` and rerun) before trusting a close call.",
        "",
    ]
    for technique, entry in summary.items():
        best = entry["best_strength"]
        lines += [f"## {technique}", ""]
        lowest = _value(entry["best_val_loss"], "best_val_loss")
        if entry["best_change_val_loss"] is None:
            lines.append(
                f"Lowest val loss: **strength 0** (the baseline), {lowest}; no strength tried "
                "does better on average."
            )
        else:
            change = _change(entry["best_change_val_loss"], "best_val_loss")
            lines.append(
                f"Lowest val loss: **{technique} = {best:g}**, {lowest}; change against the "
                f"baseline {change}."
            )
        header = [
            "strength",
            "val loss",
            "Δ val loss",
            "train loss",
            "loss gap",
            "Δ loss gap",
            "test accuracy (%)",
            "Δ test accuracy (pp)",
        ]
        rows = []
        for row in entry["points"]:
            base = row["strength"] == 0
            rows.append(
                [
                    f"{row['strength']:g}" + (" (baseline)" if base else ""),
                    _value(row["best_val_loss"], "best_val_loss"),
                    "" if base else _change(row["change_best_val_loss"], "best_val_loss"),
                    _value(row["train_loss_last"], "train_loss_last"),
                    _value(row["loss_gap_last"], "loss_gap_last"),
                    "" if base else _change(row["change_loss_gap_last"], "loss_gap_last"),
                    _value(row["test_accuracy"], "test_accuracy"),
                    "" if base else _change(row["change_test_accuracy"], "test_accuracy"),
                ]
            )
        lines += ["", *table(header, rows), ""]
    lines += ["![Strength paths](strength_paths.png)", ""]
    return "\n".join(lines)


def figure_data(paths: dict[str, list[PathPoint]]) -> dict[str, dict]:
    """What `figures.strength_paths` draws, per technique, in each metric's scale."""
    out = {}
    for technique, points in paths.items():
        tried, best = points[1:], best_point(points)
        scales = [METRICS[key].scale for key in PATH_METRICS]
        out[technique] = {
            "strengths": [p.strength for p in tried],
            "values": [
                np.array([list(p.values(key).values()) for p in tried]) * scale
                for key, scale in zip(PATH_METRICS, scales, strict=True)
            ],
            "baseline": [
                np.array(list(points[0].values(key).values())) * scale
                for key, scale in zip(PATH_METRICS, scales, strict=True)
            ],
            "best": None if best is points[0] else best.strength,
            "log": SWEPT[technique].scale == "log",
        }
    return out
