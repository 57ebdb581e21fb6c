"""Strength paths: one technique at several strengths, every seed, on top of the baseline.

`sweep-run TECHNIQUE STRENGTH --seed K` trains one point (a DVC stage instance of its own, so
adding a strength trains only it) and writes `sweeps/<technique>/<strength>-seed<k>.json`.
`sweep-report` reads the points params.yaml lists, plus the study's baseline runs as strength
0 (same seeds, same settings), and writes `reports/sweep/`: per technique, val loss, train
loss, loss gap and test accuracy against the strength with seed bands, and the best strength
by val loss with its interval.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import staged_dir, write_atomic
from .config import LOG_SCALE_TECHNIQUES, Params
from .errors import DataError
from .paths import Layout
from .spec import sweep_spec
from .stats import PairedDifference, mean_interval, paired_difference

# What the paths show: summary key, label.
PATH_METRICS = (
    ("best_val_loss", "val loss (best epoch)"),
    ("train_loss_last", "train loss (last epoch)"),
    ("loss_gap_last", "loss gap (last epoch)"),
    ("test_accuracy", "test accuracy"),
)


def run_point(
    params: Params, layout: Layout, technique: str, strength: float, seed: int, out: Path
) -> None:
    """Train one (technique, strength, seed) in an MLflow run; write its JSON to `out`."""
    import torch

    from .prepare import load_prepared
    from .train import EpochReporter, data_hyperparameters, tracked_training
    from .trainer import DeviceData, resolve_device

    spec = sweep_spec(params, technique, strength, seed)  # a bad strength fails here
    prepared = load_prepared(layout.prepared)
    device = resolve_device(params.train.device)
    if params.train.threads:
        torch.set_num_threads(params.train.threads)
    data = DeviceData.of(prepared, device)
    reporter = EpochReporter(spec)
    tags = {"sweep_technique": technique, "sweep_strength": f"{strength:g}"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result, run_id = tracked_training(
                spec, data, params, data_hyperparameters(prepared), Path(tmp), reporter,
                kind="sweep", extra_tags=tags,
            )  # fmt: skip
    finally:
        reporter.close()
    point = {
        "technique": technique,
        "strength": strength,
        "seed": seed,
        "run_id": run_id,
        "hyperparameters": spec.hyperparameters(),
        "summary": result.summary,
        "history": result.history,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(point, indent=1) + "\n")


@dataclass(frozen=True)
class PathPoint:
    """One strength of one technique: its per-seed summaries."""

    strength: float  # 0.0: the baseline
    per_seed: dict[int, dict[str, float]]

    def values(self, key: str) -> dict[int, float]:
        return {seed: s[key] for seed, s in self.per_seed.items()}


def load_paths(params: Params, layout: Layout) -> dict[str, list[PathPoint]]:
    """Per technique with strengths in params.yaml: the baseline, then each strength."""
    seeds = params.train.seeds
    base_file = layout.metrics(params.report.baseline) / "runs.json"
    if not base_file.is_file():
        raise DataError(f"{base_file} is missing: train the baseline first (dvc repro)")
    base_runs = {int(r["seed"]): r["summary"] for r in json.loads(base_file.read_text())}
    missing_base = [s for s in seeds if s not in base_runs]
    if missing_base:
        raise DataError(f"{base_file} has no run for seeds {missing_base}: run dvc repro")
    found = trained_points(layout)
    paths: dict[str, list[PathPoint]] = {}
    for technique, strength in params.sweep.points():
        # A point counts only if it was trained with today's settings.
        missing = [
            seed for seed in seeds
            if found.get((technique, strength, seed), {}).get("hyperparameters")
            != sweep_spec(params, technique, strength, seed).hyperparameters()
        ]  # fmt: skip
        if missing:
            raise DataError(
                f"sweep point {technique}={strength:g} has no run with the settings of "
                f"params.yaml for seeds {missing} under {layout.sweeps.relative_to(layout.root)}/"
                ": run `dvc repro sweep/dvc.yaml`"
            )
        per_seed = {seed: found[technique, strength, seed]["summary"] for seed in seeds}
        if technique not in paths:
            paths[technique] = [PathPoint(0.0, {s: base_runs[s] for s in seeds})]
        paths[technique].append(PathPoint(strength, per_seed))
    if not paths:
        raise DataError("params.yaml has no `sweep` strengths: list some under `sweep:`")
    return paths


def trained_points(layout: Layout) -> dict[tuple[str, float, int], dict[str, Any]]:
    """Every point under sweeps/, by (technique, strength, seed): the newest file wins. Files
    of strengths no longer in params.yaml stay there and are left out by the caller."""
    found: dict[tuple[str, float, int], tuple[float, dict[str, Any]]] = {}
    for path in sorted(layout.sweeps.glob("*/*.json")):
        point = json.loads(path.read_text())
        key = (point["technique"], float(point["strength"]), int(point["seed"]))
        mtime = path.stat().st_mtime
        if key not in found or found[key][0] < mtime:
            found[key] = (mtime, point)
    return {key: point for key, (_, point) in found.items()}


def best_point(points: list[PathPoint]) -> PathPoint:
    """The strength of lowest mean val loss (the baseline included)."""
    return min(points, key=lambda p: float(np.mean(list(p.values("best_val_loss").values()))))


def summarise_paths(paths: dict[str, list[PathPoint]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for technique, points in paths.items():
        base = points[0]
        rows = []
        for p in points:
            row: dict[str, Any] = {"strength": p.strength, "n": len(p.per_seed)}
            for key, _ in PATH_METRICS:
                row[key] = mean_interval(list(p.values(key).values())).to_json()
                if p is not base:
                    row[f"change_{key}"] = paired_difference(
                        p.values(key), base.values(key)
                    ).to_json()
            rows.append(row)
        best = best_point(points)
        out[technique] = {
            "points": rows,
            "best_strength": best.strength,
            "best_val_loss": mean_interval(list(best.values("best_val_loss").values())).to_json(),
            "best_change_val_loss": (
                None
                if best is base
                else paired_difference(
                    best.values("best_val_loss"), base.values("best_val_loss")
                ).to_json()
            ),  # fmt: skip
        }
    return out


def _interval(d: dict[str, Any], digits: int = 3, scale: float = 1.0) -> str:
    return PairedDifference.from_json(d).describe(digits, scale, signed=False)


def _change(d: dict[str, Any], digits: int = 3, scale: float = 1.0) -> str:
    diff = PairedDifference.from_json(d)
    word = " (no clear difference)" if diff.n >= 2 and not diff.clear else ""
    return diff.describe(digits, scale) + word


def markdown(summary: dict[str, Any], params: Params) -> str:
    seeds = params.train.seeds
    lines = [
        "# Strength paths",
        "",
        f"Each technique on top of `{params.report.baseline}` at the strengths in params.yaml "
        f"(`sweep`), seeds {seeds} (n = {len(seeds)} per point); strength 0 is the baseline's "
        "own runs. Cells: mean [95 % t-interval of the mean over seeds]. Changes are against "
        "strength 0, paired by seed, and called a difference only where the interval excludes "
        "zero. Val loss is at the best epoch (the weights the test score uses); train loss and "
        "gap at the last epoch.",
        "",
        "The best strength is picked on the same runs whose val loss it reports, and every row "
        "is a comparison of its own, so its interval is optimistic: confirm a choice on new "
        "seeds (add them to `train.seeds` and rerun) before trusting a close call.",
        "",
    ]
    for technique, entry in summary.items():
        best = entry["best_strength"]
        lines += [f"## {technique}", ""]
        if entry["best_change_val_loss"] is None:
            lines.append(
                f"Lowest val loss: **strength 0** (the baseline), "
                f"{_interval(entry['best_val_loss'])}; no strength tried does better on average."
            )
        else:
            lines.append(
                f"Lowest val loss: **{technique} = {best:g}**, {_interval(entry['best_val_loss'])}"
                f"; change against the baseline {_change(entry['best_change_val_loss'])}."
            )
        lines += [
            "",
            "| strength | val loss | Δ val loss | train loss | loss gap | Δ loss gap | "
            "test accuracy (%) | Δ test accuracy (pp) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in entry["points"]:
            base = row["strength"] == 0
            cells = [
                f"{row['strength']:g}" + (" (baseline)" if base else ""),
                _interval(row["best_val_loss"]),
                "" if base else _change(row["change_best_val_loss"]),
                _interval(row["train_loss_last"]),
                _interval(row["loss_gap_last"]),
                "" if base else _change(row["change_loss_gap_last"]),
                _interval(row["test_accuracy"], 2, 100.0),
                "" if base else _change(row["change_test_accuracy"], 2, 100.0),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["![Strength paths](strength_paths.png)", ""]
    return "\n".join(lines)


def draw(paths: dict[str, list[PathPoint]], path: Path) -> None:
    """Rows: techniques; columns: the path metrics. Line: mean over seeds; band: min to max
    over seeds; dashed line and grey band: the baseline (strength 0). λ-like strengths on a
    log axis."""
    from .figures import DPI, _plt

    plt, _ = _plt()
    rows, cols = len(paths), len(PATH_METRICS)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for r, (technique, points) in enumerate(paths.items()):
        tried = points[1:]
        xs = np.array([p.strength for p in tried])
        best = best_point(points)
        for c, (key, label) in enumerate(PATH_METRICS):
            ax = axes[r][c]
            scale = 100.0 if key == "test_accuracy" else 1.0
            values = np.array([list(p.values(key).values()) for p in tried]) * scale
            ax.plot(xs, values.mean(axis=1), marker="o", color="tab:blue")
            ax.fill_between(xs, values.min(axis=1), values.max(axis=1), color="tab:blue",
                            alpha=0.2, lw=0)  # fmt: skip
            base = np.array(list(points[0].values(key).values())) * scale
            ax.axhline(base.mean(), color="black", ls="--", lw=1, label="baseline (strength 0)")
            ax.axhspan(base.min(), base.max(), color="black", alpha=0.07, lw=0)
            if best is not points[0]:
                ax.axvline(best.strength, color="tab:red", lw=0.8, ls=":")
            if technique in LOG_SCALE_TECHNIQUES:
                ax.set_xscale("log")
            ax.set_xlabel(technique)
            if r == 0:
                ax.set_title(label + (" (%)" if scale != 1.0 else ""))
    axes[0][0].legend(fontsize="small")
    fig.suptitle(
        "Strength paths: mean over seeds (band: min–max); dotted red: lowest val loss", y=1.0
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def sweep_report(params: Params, layout: Layout) -> dict[str, Any]:
    paths = load_paths(params, layout)
    summary = summarise_paths(paths)
    with staged_dir(layout.sweep_reports) as staging:
        draw(paths, staging / "strength_paths.png")
        (staging / "sweep.md").write_text(markdown(summary, params))
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
