"""`compare --by PARAM`: one report across studies, from the runs in the MLflow store.

A study is run at several settings (label noise, training-set size ...), e.g. as queued DVC
experiments; every training run lands in the same MLflow experiment with its parameters. This
groups the finished training runs by one parameter and, within each group, compares every
variant with the baseline seed by seed, as the gap report does. Per (value, variant), only runs
with the settings of the newest one count, and of those the newest per seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..analysis.comparisons import Family, against_baseline
from ..analysis.stats import PairedDifference, mean_interval
from ..core.errors import DataError
from ..core.metrics import ACROSS_STUDIES, METRICS
from .tables import interval, table


@dataclass(frozen=True)
class TrainingRun:
    group: str  # the value of the grouping parameter, as logged
    variant: str
    seed: int
    started: int
    metrics: dict[str, float]
    settings: tuple[tuple[str, str], ...]  # every logged param but the grouping one and seed


def _same(logged: str, wanted: str) -> bool:
    """A logged parameter against a `--where` value: as numbers when both are, else as text."""
    try:
        return math.isclose(float(logged), float(wanted), rel_tol=1e-12)
    except ValueError:
        return logged == wanted


def training_runs(runs: list[Any], experiment: str, by: str, where: dict[str, str]) -> list:
    """The study's training runs among MLflow's finished `runs` (not sweep points, not
    reports, not overrides, not seeds added in rounds) that log `by` and match `where`."""
    out, seen_params = [], set()
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if "variant" not in tags or tags.get("kind", "train") != "train":
            continue
        if tags.get("round"):
            # A seed the rounds added was chosen by its own study's verdicts: across studies
            # only the seeds every variant trained count (one look, no stopping rule).
            continue
        seen_params |= set(params)
        if by not in params or not all(
            k in params and _same(params[k], v) for k, v in where.items()
        ):
            continue
        settings = tuple(sorted((k, v) for k, v in params.items() if k not in (by, "seed")))
        out.append(
            TrainingRun(
                params[by],
                tags["variant"],
                int(tags["seed"]),
                run.info.start_time,
                run.data.metrics,
                settings,
            )
        )
    if not out:
        hint = f"; parameters the runs log: {', '.join(sorted(seen_params))}" if seen_params else ""
        raise DataError(
            f"no finished training run in {experiment!r} logs {by!r}"
            + (f" with {where}" if where else "")
            + hint
        )
    return out


def _sort_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def latest(runs: list[TrainingRun]) -> tuple[dict[str, dict[str, dict[int, TrainingRun]]], int]:
    """group -> variant -> seed -> run, and how many runs were left out.

    Per (group, variant), only runs with the settings of the newest one count (an older study
    with other epochs, say, never mixes in), and of those the newest per seed."""
    newest: dict[tuple[str, str], TrainingRun] = {}
    for run in runs:
        key = (run.group, run.variant)
        if key not in newest or newest[key].started < run.started:
            newest[key] = run
    found: dict[str, dict[str, dict[int, TrainingRun]]] = {}
    for run in sorted(runs, key=lambda r: r.started):
        if run.settings == newest[run.group, run.variant].settings:
            found.setdefault(run.group, {}).setdefault(run.variant, {})[run.seed] = run
    kept = sum(len(seeds) for variants in found.values() for seeds in variants.values())
    return {g: found[g] for g in sorted(found, key=_sort_key)}, len(runs) - kept


def summarise(
    found: dict[str, dict[str, dict[int, TrainingRun]]],
    baseline: str,
    order: list[str],
    alpha: float,
    margins: Mapping[str, float],
) -> dict:
    """Per group, the baseline first, then the variants in `order` (params.yaml's), then any
    other variant the runs hold, by name. A group's changes on one metric are a family."""
    rank = {name: i for i, name in enumerate([baseline, *order])}
    out: dict[str, Any] = {}
    for group, variants in found.items():
        entry: dict[str, Any] = {}
        base = variants.get(baseline)
        family = Family(len(variants) - 1, alpha)
        for name in sorted(variants, key=lambda n: (rank.get(n, len(rank)), n)):
            seeds = variants[name]
            row: dict[str, Any] = {"n": len(seeds)}
            for key in ACROSS_STUDIES:
                values = {s: r.metrics[key] for s, r in seeds.items() if key in r.metrics}
                row[key] = mean_interval(list(values.values())).to_json()
                if base is not None and name != baseline:
                    base_values = {s: r.metrics[key] for s, r in base.items() if key in r.metrics}
                    change = against_baseline(key, values, base_values, family, margins[key])
                    row[f"change_{key}"] = change.to_json()
            entry[name] = row
        out[group] = entry
    return out


def markdown(
    summary: dict[str, Any], by: str, baseline: str, where: dict[str, str], left_out: int
) -> str:
    lines = [
        f"# Comparison across `{by}`",
        "",
        f"Finished training runs of the MLflow experiment, grouped by the logged parameter "
        f"`{by}`" + (f", where {where}" if where else "") + "; per (value, variant) only runs "
        "with the settings of the newest one count, the newest per seed "
        f"({left_out} older or repeated runs left out). Cells: mean [95 % t-interval over "
        "seeds]; changes are "
        f"against `{baseline}` within the same group, paired by seed, with intervals corrected "
        "for the number of variants in the group on each measure (Bonferroni) and the verdicts "
        "of the gap report: equivalent where two one-sided tests put the change within ±δ, "
        "else better or worse where the interval excludes zero, else undecided. Loss gap = "
        "val − train data loss at the last epoch; test accuracy with the best epoch's weights.",
        "",
    ]
    header = [
        by,
        "variant",
        "n",
        "loss gap",
        "Δ loss gap",
        "verdict",
        "test accuracy (%)",
        "Δ test accuracy (pp)",
        "verdict",
    ]
    rows = []
    for group, variants in summary.items():
        for name, row in variants.items():
            cells = [group, name, str(row["n"])]
            for key in ACROSS_STUDIES:
                metric = METRICS[key]
                cells.append(interval(PairedDifference.from_json(row[key]), metric, False))
                change = row.get(f"change_{key}")
                cells += (
                    [interval(PairedDifference.from_json(change), metric), change["verdict"]]
                    if change
                    else ["", ""]
                )
            rows.append(cells)
    lines += table(header, rows)
    lines += ["", "![Comparison](compare.png)", ""]
    return "\n".join(lines)


def figure_panels(summary: dict[str, Any]) -> list[tuple[str, dict, bool]]:
    """What `figures.across_groups` draws: per metric, each variant's (group index, mean,
    half-width of its interval) in the metric's scale."""
    panels = []
    for key in ACROSS_STUDIES:
        scale = METRICS[key].scale
        series: dict[str, list[tuple[int, float, float]]] = {}
        for g, entry in enumerate(summary.values()):
            for name, row in entry.items():
                d = row[key]
                half = 0.0 if d["n"] < 2 else (d["high"] - d["mean"])
                series.setdefault(name, []).append((g, d["mean"] * scale, half * scale))
        panels.append((METRICS[key].title, series, key == "loss_gap_last"))
    return panels
