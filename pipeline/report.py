"""The `report` stage: how much each variant closes the generalization gap, with evidence.

Reads what the train stages wrote (`metrics/<variant>/`, `models/<variant>/`), never MLflow,
and writes `reports/gap_report.md`, `reports/summary.json` (DVC metrics) and the figures in
`reports/figures/`.

Definitions (see the README): loss gap = val data loss − train data loss, both over the whole
split in eval mode; "end of training" is the last epoch trained (the stopping epoch under
early stopping); test accuracy is that of the best epoch's weights. A change against the
baseline is the mean of per-seed differences with a 95 % t-interval, and is called a change
only where that interval excludes zero.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .atomic import staged_dir, write_atomic
from .config import Params
from .errors import DataError
from .paths import Layout
from .stats import PairedDifference, paired_difference

# What each comparison reads from a run's summary, and which direction is good.
COMPARED = {
    "loss_gap_last": "lower",
    "best_val_loss": "lower",
    "test_accuracy": "higher",
}

# Columns of the comparison table: key, digits, scale (accuracy in percentage points).
TABLE_DIFFS = (("loss_gap_last", 3, 1.0), ("best_val_loss", 3, 1.0), ("test_accuracy", 2, 100.0))


@dataclass(frozen=True)
class VariantRuns:
    name: str
    runs: list[dict[str, Any]]  # runs.json of the variant: its finished runs
    history: pd.DataFrame  # history.csv of the variant
    # missing.json: runs that did not finish (written by `study --executor ray`, whose failed
    # tasks do not stop the others; a DVC train stage fails as a whole instead)
    missing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def diverged_seeds(self) -> list[int]:
        return sorted(int(m["seed"]) for m in self.missing if m.get("diverged"))

    def per_seed(self, key: str) -> dict[int, float]:
        return {int(r["seed"]): float(r["summary"][key]) for r in self.runs}

    def mean_sd(self, key: str) -> tuple[float, float]:
        values = np.array(list(self.per_seed(key).values()))
        sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        return float(values.mean()), sd


def load_variant(layout: Layout, name: str, seeds: list[int]) -> VariantRuns:
    folder = layout.metrics(name)
    runs_path, history_path = folder / "runs.json", folder / "history.csv"
    missing_path = folder / "missing.json"
    runs = json.loads(runs_path.read_text()) if runs_path.is_file() else None
    missing = json.loads(missing_path.read_text()) if missing_path.is_file() else []
    # missing.json is not a DVC output: after `dvc checkout` of a complete stage it may still
    # lie beside it. Only seeds of the study that have no finished run count as missing.
    finished = {int(r["seed"]) for r in runs or []}
    missing = [m for m in missing if m["seed"] in seeds and m["seed"] not in finished]
    if runs == [] and missing:  # every run of the variant failed
        return VariantRuns(name, [], pd.DataFrame(), missing)
    for path in (runs_path, history_path):
        if not path.is_file():
            raise DataError(
                f"{path}: missing; train the variant first (`python -m pipeline train "
                f"--variant {name}` or `dvc repro`)"
            )
    return VariantRuns(name, runs, pd.read_csv(history_path), missing)


def by_name(variants: list[VariantRuns], name: str) -> VariantRuns:
    return next(v for v in variants if v.name == name)


def regularization_label(hp: dict[str, Any]) -> str:
    """A short description of what a variant switches on, from its resolved hyperparameters."""
    parts = []
    if any(p > 0 for p in hp["dropout"]) or hp["input_dropout"] > 0:
        rates = "/".join(f"{p:g}" for p in hp["dropout"])
        parts.append(
            f"dropout {rates}" + (f", input {hp['input_dropout']:g}" if hp["input_dropout"] else "")
        )
    if hp["l1"] > 0:
        parts.append(f"L1 λ1={hp['l1']:g}")
    if hp["l2"] > 0:
        parts.append(f"L2 λ2={hp['l2']:g}")
    if hp["weight_decay"] > 0:
        parts.append(
            f"{hp['weight_decay_kind']} weight decay {hp['weight_decay']:g} ({hp['optimizer']})"
        )
    if hp["max_norm"] > 0:
        parts.append(f"max-norm {hp['max_norm']:g}")
    if hp["patience"] > 0:
        parts.append(f"early stopping, patience {hp['patience']}")
    if hp["penalize_bias"] and (hp["l1"] > 0 or hp["l2"] > 0 or hp["weight_decay"] > 0):
        parts.append("biases penalised")
    return "; ".join(parts) or "none"


def compare(variants: list[VariantRuns], baseline: str) -> dict[str, dict[str, PairedDifference]]:
    base = by_name(variants, baseline)
    return {
        v.name: {k: paired_difference(v.per_seed(k), base.per_seed(k)) for k in COMPARED}
        for v in variants
        if v.name != baseline
    }


def withheld(variant: VariantRuns, baseline: VariantRuns) -> str | None:
    """Why a comparison gets no verdict: a side diverged on some seeds, and its seeds that
    are left would flatter it."""
    for side in (variant, baseline):
        if side.diverged_seeds:
            return f"no verdict: {side.name} diverged on seed(s) {side.diverged_seeds}"
    return None


def verdict(key: str, diff: PairedDifference) -> str:
    """Plain words for one comparison; 'no clear difference' whenever the interval holds 0."""
    if diff.n < 2:
        return "too few seeds to tell"
    if diff.low == diff.high == 0:
        return "identical on every seed"
    if not diff.clear:
        return "no clear difference"
    if key == "loss_gap_last":
        return "closes the gap" if diff.mean < 0 else "widens the gap"
    better = (diff.mean < 0) == (COMPARED[key] == "lower")
    return "better" if better else "worse"


def _pm(mean: float, sd: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def conditions(params: Params, layout: Layout, variants: list[VariantRuns]) -> dict[str, Any]:
    """What the numbers rest on: data, seeds, device, versions, commit."""
    from importlib.metadata import version

    from .tracking import git_commit

    meta = json.loads((layout.prepared / "meta.json").read_text())
    first = variants[0].runs[0]
    return {
        "dataset": meta["dataset"],
        "sizes": meta["sizes"],
        "label_noise": meta["label_noise"],
        "seeds": sorted({int(r["seed"]) for v in variants for r in v.runs}),
        "hidden_sizes": first["hyperparameters"]["hidden_sizes"],
        "epochs": first["hyperparameters"]["epochs"],
        "batch_size": first["hyperparameters"]["batch_size"],
        "lr": first["hyperparameters"]["lr"],
        "device": sorted({r["device"] for v in variants for r in v.runs}),
        "torch": version("torch"),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "baseline": params.report.baseline,
    }


def summarise(
    variants: list[VariantRuns],
    diffs: dict[str, dict[str, PairedDifference]],
    cond: dict[str, Any],
    missing: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON that DVC reads as the study's metrics."""
    out: dict[str, Any] = {"conditions": cond, "variants": {}}
    for v in variants:
        entry: dict[str, Any] = {"n_seeds": len(v.runs)}
        for key in (
            "train_loss_last",
            "val_loss_last",
            "loss_gap_last",
            "accuracy_gap_last",
            "loss_gap_best",
            "best_val_loss",
            "test_accuracy",
            "near_zero_fraction",
        ):
            mean, sd = v.mean_sd(key)
            entry[key] = {"mean": mean, "sd": sd}
        if v.name in diffs:
            no_verdict = withheld(v, by_name(variants, cond["baseline"]))
            entry["vs_baseline"] = {
                k: {**d.to_json(), "verdict": no_verdict or verdict(k, d)}
                for k, d in diffs[v.name].items()
            }
        out["variants"][v.name] = entry
    out["ranking_by_best_val_loss"] = ranking(variants)
    out["missing_runs"] = missing
    return out


def ranking(variants: list[VariantRuns]) -> list[str]:
    """Variants from lowest to highest mean val loss at their best epoch; a variant that
    diverged on some seed is left out (its other seeds would flatter it)."""
    ranked = [v for v in variants if not v.diverged_seeds]
    return [v.name for v in sorted(ranked, key=lambda v: v.mean_sd("best_val_loss")[0])]


def markdown(
    variants: list[VariantRuns],
    diffs: dict[str, dict[str, PairedDifference]],
    cond: dict[str, Any],
    missing: list[dict[str, Any]],
) -> str:
    baseline = cond["baseline"]
    n_seeds = len(cond["seeds"])
    lines = [
        "# Generalization gap report",
        "",
        f"Dataset **{cond['dataset']}** (train {cond['sizes']['train']}, val "
        f"{cond['sizes']['val']}, test {cond['sizes']['test']}; label noise "
        f"{cond['label_noise']:g}), MLP {cond['hidden_sizes']}, {cond['epochs']} epochs, batch "
        f"{cond['batch_size']}, lr {cond['lr']:g}, seeds {cond['seeds']} "
        f"({'some runs missing' if missing else f'{n_seeds} per variant'}), "
        f"device {', '.join(cond['device'])}, torch {cond['torch']}, Python {cond['python']}.",
        "",
        "Losses are the data loss (cross-entropy, eval mode, no penalty) over the whole split. "
        "*Loss gap* = val loss − train loss; *accuracy gap* = train − val accuracy; both at the "
        "end of training (the last epoch trained). Test accuracy uses the weights of the epoch "
        "of lowest val loss. Values are mean ± sd over seeds.",
        "",
        *missing_section(missing),
        "## Gap at the end of training",
        "",
        "| variant | regularization | train loss | val loss | loss gap | accuracy gap | "
        "best val loss | test accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        hp = v.runs[0]["hyperparameters"]
        cells = [
            _pm(*v.mean_sd(k))
            for k in (
                "train_loss_last",
                "val_loss_last",
                "loss_gap_last",
                "accuracy_gap_last",
                "best_val_loss",
                "test_accuracy",
            )
        ]
        label = v.name if len(v.runs) == n_seeds else f"{v.name} (n={len(v.runs)})"
        lines.append(f"| {label} | {regularization_label(hp)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Change against `{baseline}` (paired by seed, 95 % interval)",
        "",
        "Each cell: mean of (variant − baseline) over seeds [95 % t-interval], n = "
        + (
            f"{n_seeds}"
            if not missing
            else f"{n_seeds} unless a cell says less (the seeds both have finished)"
        )
        + ". A change is claimed only where the interval excludes zero.",
        "",
        "| variant | Δ loss gap | verdict | Δ best val loss | verdict | Δ test accuracy (pp) | "
        "verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    base = by_name(variants, baseline)
    for name, d in diffs.items():
        no_verdict = withheld(by_name(variants, name), base)
        cells = []
        for key, digits, scale in TABLE_DIFFS:
            shown = d[key].describe(digits, scale)
            if 2 <= d[key].n < n_seeds:
                shown += f" (n={d[key].n})"
            cells += [shown, no_verdict or verdict(key, d[key])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## In words", ""]
    base_gap = base.mean_sd("loss_gap_last")[0]
    for name, d in diffs.items():
        no_verdict = withheld(by_name(variants, name), base)
        if no_verdict:
            lines.append(f"- **{name}**: {no_verdict}; the seeds left would flatter it.")
            continue
        gap = d["loss_gap_last"]
        words = verdict("loss_gap_last", gap)
        if words in ("closes the gap", "widens the gap"):
            share = (
                f" ({abs(gap.mean) / base_gap:.0%} of the baseline's gap)" if base_gap > 0 else ""
            )
            sentence = (
                f"- **{name}** {words} by {abs(gap.mean):.3f}{share}, 95 % interval "
                f"[{gap.low:+.3f}, {gap.high:+.3f}]"
            )
        else:
            sentence = f"- **{name}**: {words} in the loss gap ({gap.describe()})"
        acc = d["test_accuracy"]
        sentence += f"; test accuracy {verdict('test_accuracy', acc)} ({acc.describe(2, 100)} pp)."
        lines.append(sentence)
    lines += [
        "",
        "Ranked by mean best val loss (lowest first; ties keep the order of params.yaml; "
        "neighbours may not differ clearly): "
        + ", ".join(f"{i}. {name}" for i, name in enumerate(ranking(variants), start=1))
        + "."
        + "".join(
            f" Left out: {v.name}, which diverged on seed(s) {v.diverged_seeds}."
            for v in variants
            if v.diverged_seeds
        ),
        "",
        "## Gap at the best epoch",
        "",
        "| variant | best epoch | loss gap | accuracy gap | near-zero weights |",
        "|---|---|---|---|---|",
    ]
    for v in variants:
        lines.append(
            f"| {v.name} | {_pm(*v.mean_sd('best_epoch'), digits=1)} | "
            f"{_pm(*v.mean_sd('loss_gap_best'))} | {_pm(*v.mean_sd('accuracy_gap_best'))} | "
            f"{_pm(*v.mean_sd('near_zero_fraction'))} |"
        )
    lines += [
        "",
        "Near-zero weights: fraction of linear-layer weights with |w| < 1e-3 in the kept model.",
        "",
        "## Figures",
        "",
        "![Learning curves](figures/learning_curves.png)",
        "",
        "![Loss gap per epoch](figures/loss_gap.png)",
        "",
        "![Final gap per variant](figures/final_gap.png)",
        "",
        "![Weight magnitudes](figures/weight_magnitudes.png)",
        "",
    ]
    return "\n".join(lines)


def missing_section(missing: list[dict[str, Any]]) -> list[str]:
    """The runs that did not finish, by name, above every table that lacks them."""
    if not missing:
        return []
    return [
        "## Missing runs",
        "",
        f"{len(missing)} run(s) did not finish and are left out of every table below; each "
        "comparison pairs only the seeds that both sides have.",
        "",
        *(f"- **{m['run_name']}**: {m['reason']}" for m in missing),
        "",
    ]


def report_stage(params: Params, layout: Layout) -> dict[str, Any]:
    """Read every variant's outputs and write the report, figures and summary."""
    from .figures import draw_all

    loaded = [load_variant(layout, name, params.train.seeds) for name in params.variants]
    missing = [m for v in loaded for m in v.missing]
    variants = [v for v in loaded if v.runs]
    baseline = params.report.baseline
    if not any(v.name == baseline for v in variants):
        raise DataError(
            f"no run of the baseline {baseline!r} finished, so nothing can be compared: "
            + "; ".join(f"{m['run_name']}: {m['reason']}" for m in missing)
        )
    diffs = compare(variants, baseline)
    cond = conditions(params, layout, variants)
    summary = summarise(variants, diffs, cond, missing)
    with staged_dir(layout.figures) as staging:
        draw_all(variants, layout, staging)
    write_atomic(layout.reports / "gap_report.md", markdown(variants, diffs, cond, missing))
    write_atomic(layout.reports / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def log_report(params: Params, layout: Layout, summary: dict[str, Any], join: bool) -> str:
    """Log the report as an MLflow run of its own; return its run id."""
    import mlflow

    from . import tracking

    tags = {
        "kind": "report",
        "dataset": summary["conditions"]["dataset"],
        **tracking.context_tags(),
    }
    with tracking.tracked_run(params.mlflow.experiment, "report", tags, join) as run:
        metrics = {}
        for name, entry in summary["variants"].items():
            metrics[f"loss_gap_last.{name}"] = entry["loss_gap_last"]["mean"]
            metrics[f"test_accuracy.{name}"] = entry["test_accuracy"]["mean"]
        mlflow.log_metrics(metrics)
        for path in ("gap_report.md", "summary.json"):
            mlflow.log_artifact(str(layout.reports / path))
        mlflow.log_artifacts(str(layout.figures), artifact_path="figures")
        return run.info.run_id
