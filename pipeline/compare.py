"""`compare --by PARAM`: one report across studies, read from the MLflow store.

A study is run at several settings (label noise, training-set size ...), e.g. as queued DVC
experiments; every training run lands in the same MLflow experiment with its parameters. This
groups the finished training runs by one parameter and, within each group, compares every
variant with the baseline seed by seed, as the gap report does. Writes
`reports/compare/<param>/` (compare.md, summary.json, compare.png).

Where a (value, variant, seed) was trained more than once, the newest run counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import staged_dir
from .errors import ConfigError, DataError
from .report import verdict
from .stats import PairedDifference, mean_interval, paired_difference

METRICS = (
    ("loss_gap_last", "loss gap (last epoch)", 1.0),
    ("test_accuracy", "test accuracy (%)", 100.0),
)


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


def parse_where(pairs: tuple[str, ...]) -> dict[str, str]:
    where = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--where {pair!r}: expected KEY=VALUE, e.g. dataset=mnist-5k")
        where[key] = value
    return where


def fetch_runs(experiment: str, by: str, where: dict[str, str]) -> list[TrainingRun]:
    """The finished training runs (not sweep points, not reports) that log `by`."""
    from mlflow import MlflowClient

    from .tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise DataError(f"no MLflow experiment {experiment!r} in {tracking_uri()}")
    runs, token, seen_params = [], None, set()
    while True:
        page = client.search_runs(
            [exp.experiment_id], "attributes.status = 'FINISHED'", max_results=1000,
            page_token=token,
        )  # fmt: skip
        runs += page
        token = page.token
        if not token:
            break
    out = []
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if "variant" not in tags or tags.get("kind", "train") != "train":
            continue
        seen_params |= set(params)
        if by not in params or not all(k in params and _same(params[k], v)
                                       for k, v in where.items()):  # fmt: skip
            continue
        settings = tuple(sorted((k, v) for k, v in params.items() if k not in (by, "seed")))
        out.append(TrainingRun(params[by], tags["variant"], int(tags["seed"]),
                               run.info.start_time, run.data.metrics, settings))  # fmt: skip
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
    table: dict[str, dict[str, dict[int, TrainingRun]]] = {}
    for run in sorted(runs, key=lambda r: r.started):
        if run.settings == newest[run.group, run.variant].settings:
            table.setdefault(run.group, {}).setdefault(run.variant, {})[run.seed] = run
    kept = sum(len(seeds) for variants in table.values() for seeds in variants.values())
    return {g: table[g] for g in sorted(table, key=_sort_key)}, len(runs) - kept


def summarise(
    table: dict[str, dict[str, dict[int, TrainingRun]]], baseline: str, order: list[str]
) -> dict:
    """Per group, the baseline first, then the variants in `order` (params.yaml's), then any
    other variant the runs hold, by name."""
    rank = {name: i for i, name in enumerate([baseline, *order])}
    out: dict[str, Any] = {}
    for group, variants in table.items():
        entry: dict[str, Any] = {}
        base = variants.get(baseline)
        for name in sorted(variants, key=lambda n: (rank.get(n, len(rank)), n)):
            seeds = variants[name]
            row: dict[str, Any] = {"n": len(seeds)}
            for key, _, _ in METRICS:
                values = {s: r.metrics[key] for s, r in seeds.items() if key in r.metrics}
                row[key] = mean_interval(list(values.values())).to_json()
                if base is not None and name != baseline:
                    base_values = {s: r.metrics[key] for s, r in base.items() if key in r.metrics}
                    diff = paired_difference(values, base_values)
                    row[f"change_{key}"] = {**diff.to_json(), "verdict": verdict(key, diff)}
            entry[name] = row
        out[group] = entry
    return out


def _cell(d: dict[str, Any], scale: float, digits: int, signed: bool = False) -> str:
    return PairedDifference.from_json(d).describe(digits, scale, signed)


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
        f"against `{baseline}` within the same group, paired by seed, and called a difference "
        "only where the interval excludes zero. Loss gap = val − train data loss at the last "
        "epoch; test accuracy with the best epoch's weights.",
        "",
        f"| {by} | variant | n | loss gap | Δ loss gap | verdict | test accuracy (%) | "
        "Δ test accuracy (pp) | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for group, variants in summary.items():
        for name, row in variants.items():
            cells = [group, name, str(row["n"]), _cell(row["loss_gap_last"], 1.0, 3)]
            gap = row.get("change_loss_gap_last")
            cells += [_cell(gap, 1.0, 3, True), gap["verdict"]] if gap else ["", ""]
            cells.append(_cell(row["test_accuracy"], 100.0, 2))
            acc = row.get("change_test_accuracy")
            cells += [_cell(acc, 100.0, 2, True), acc["verdict"]] if acc else ["", ""]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "![Comparison](compare.png)", ""]
    return "\n".join(lines)


def draw(summary: dict[str, Any], by: str, path: Path) -> None:
    """Each variant's loss gap and test accuracy against the grouping value; error bars: the
    95 % t-interval of the mean over seeds."""
    from .figures import DPI, _plt

    plt, _ = _plt()
    groups = list(summary)
    numeric = all(_sort_key(g)[0] == 0 for g in groups)
    xs = [float(g) for g in groups] if numeric else list(range(len(groups)))
    variants = list(dict.fromkeys(name for entry in summary.values() for name in entry))
    # Each variant a little to the side, so that the error bars do not hide each other.
    spread = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
    dodge = 0.25 * spread / max(1, len(xs) - 1) / max(1, len(variants))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 4.2))
    for ax, (key, label, scale) in zip(axes, METRICS, strict=True):
        for i, name in enumerate(variants):
            points = [(x, summary[g][name][key]) for x, g in zip(xs, groups, strict=True)
                      if name in summary[g]]  # fmt: skip
            shift = (i - (len(variants) - 1) / 2) * dodge
            x = np.array([p[0] for p in points]) + shift
            mean = np.array([p[1]["mean"] for p in points]) * scale
            half = np.array([0.0 if p[1]["n"] < 2 else (p[1]["high"] - p[1]["mean"])
                             for p in points]) * scale  # fmt: skip
            ax.errorbar(x, mean, yerr=half, marker="o", capsize=3, label=name,
                        color=f"C{i % 10}")  # fmt: skip
        ax.set_xlabel(by)
        ax.set_xticks(xs, groups)
        if key == "loss_gap_last":
            ax.axhline(0, color="black", lw=0.8)
        ax.set_title(label)
    axes[-1].legend(title="variant", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(f"Across {by}: mean over seeds with 95 % intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def compare(
    experiment: str, by: str, where: dict[str, str], baseline: str, order: list[str], out: Path
) -> dict[str, Any]:
    table, left_out = latest(fetch_runs(experiment, by, where))
    summary = summarise(table, baseline, order)
    with staged_dir(out) as staging:
        draw(summary, by, staging / "compare.png")
        (staging / "compare.md").write_text(markdown(summary, by, baseline, where, left_out))
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
