"""The report when runs are missing (a Ray study whose tasks failed): who is named, what is
compared on which seeds, and where no verdict may be given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from pipeline.config import Params
from pipeline.paths import Layout
from pipeline.report import report_stage
from pipeline.spec import run_specs

from .conftest import TINY_PARAMS

SEEDS = [0, 1, 2]
PARAMS = {
    **TINY_PARAMS,
    "train": {**TINY_PARAMS["train"], "seeds": SEEDS},
    "variants": {
        "baseline": {"description": "nothing"},
        "diverging": {"l2": 0.001},
        "lost_one": {"l1": 0.0001},
        "complete": {"dropout": 0.5},
    },
}
# best val loss per seed: "diverging" and "lost_one" beat the baseline by 0.1 on every seed
# they finished (an interval that excludes 0 by far, even with n = 2).
BEST_VAL = {
    "baseline": {0: 0.50, 1: 0.52, 2: 0.51},
    "diverging": {0: 0.40, 1: 0.421},
    "lost_one": {0: 0.401, 2: 0.41},
    "complete": {0: 0.50, 1: 0.52, 2: 0.51},
}


def write_variant(layout: Layout, params: Params, name: str, missing: list[dict]) -> None:
    specs = {s.seed: s for s in run_specs(params, name)}
    folder = layout.metrics(name)
    folder.mkdir(parents=True)
    runs, rows = [], []
    for seed, best in BEST_VAL[name].items():
        summary = {
            "best_val_loss": best, "best_epoch": 3.0, "train_loss_last": 0.1,
            "val_loss_last": best + 0.05, "loss_gap_last": best - 0.05, "accuracy_gap_last": 0.02,
            "loss_gap_best": best - 0.1, "accuracy_gap_best": 0.01, "test_accuracy": 0.9,
            "near_zero_fraction": 0.0,
        }  # fmt: skip
        runs.append({"variant": name, "seed": seed, "run_id": f"{name}{seed}", "device": "cpu",
                     "stopped_early": False, "hyperparameters": specs[seed].hyperparameters(),
                     "summary": summary})  # fmt: skip
        for epoch in (1, 2, 3, 4):
            rows.append({"variant": name, "seed": seed, "epoch": epoch, "train_loss": 0.1,
                         "val_loss": best, "loss_gap": best - 0.1, "train_accuracy": 0.99,
                         "val_accuracy": 0.9})  # fmt: skip
        weights = layout.models(name) / f"seed{seed}"
        weights.mkdir(parents=True)
        save_file({"0.weight": np.full((4, 3), 0.1, np.float32)}, weights / "model.safetensors")
    (folder / "runs.json").write_text(json.dumps(runs))
    header = list(rows[0])
    (folder / "history.csv").write_text(
        "\n".join([",".join(header)] + [",".join(str(r[k]) for k in header) for r in rows])
    )
    if missing:
        (folder / "missing.json").write_text(json.dumps(missing))


def missing_entry(variant: str, seed: int, diverged: bool) -> dict:
    reason = "TrainingDiverged: training diverged at epoch 2" if diverged else "its worker died"
    return {"variant": variant, "seed": seed, "run_name": f"{variant}-seed{seed}",
            "reason": reason, "diverged": diverged}  # fmt: skip


@pytest.fixture
def report(tmp_path: Path) -> tuple[dict, str]:
    params = Params.model_validate(yaml.safe_load(yaml.safe_dump(PARAMS)))
    layout = Layout(tmp_path)
    layout.prepared.mkdir(parents=True)
    meta = {"dataset": "digits", "sizes": {"train": 10, "val": 5, "test": 5}, "label_noise": 0.0}
    (layout.prepared / "meta.json").write_text(json.dumps(meta))
    write_variant(layout, params, "baseline", [])
    write_variant(layout, params, "diverging", [missing_entry("diverging", 2, diverged=True)])
    write_variant(layout, params, "lost_one", [missing_entry("lost_one", 1, diverged=False)])
    # A stale file beside a complete variant (as `dvc checkout` of its stage leaves it).
    write_variant(layout, params, "complete", [missing_entry("complete", 0, diverged=False)])
    summary = report_stage(params, layout)
    return summary, (layout.reports / "gap_report.md").read_text()


def test_missing_runs_are_named_and_a_stale_record_is_ignored(report: tuple[dict, str]) -> None:
    summary, text = report
    assert [m["run_name"] for m in summary["missing_runs"]] == ["diverging-seed2", "lost_one-seed1"]
    assert "**diverging-seed2**: TrainingDiverged" in text
    assert "**lost_one-seed1**: its worker died" in text
    assert "complete-seed0" not in text
    assert "| complete |" in text and "| lost_one (n=2) |" in text


def test_a_variant_that_diverged_on_a_seed_gets_no_verdict(report: tuple[dict, str]) -> None:
    summary, text = report
    diverging = summary["variants"]["diverging"]["vs_baseline"]["best_val_loss"]
    # Its two finished seeds beat the baseline clearly, but the third diverged: no claim.
    assert diverging["clear"] and diverging["mean"] == pytest.approx(-0.0995)
    assert diverging["verdict"] == "no verdict: diverging diverged on seed(s) [2]"
    assert "diverging" not in summary["ranking_by_best_val_loss"]
    assert "Left out: diverging, which diverged on seed(s) [2]." in text
    assert "- **diverging**: no verdict: diverging diverged on seed(s) [2]" in text


def test_a_lost_run_leaves_a_paired_comparison_on_the_other_seeds(
    report: tuple[dict, str],
) -> None:
    summary, text = report
    lost = summary["variants"]["lost_one"]["vs_baseline"]["best_val_loss"]
    assert lost["n"] == 2 and lost["mean"] == pytest.approx(((0.401 - 0.50) + (0.41 - 0.51)) / 2)
    assert lost["verdict"] == "better"
    assert "(n=2)" in next(line for line in text.splitlines() if line.startswith("| lost_one |"))
    assert summary["ranking_by_best_val_loss"][0] == "lost_one"
