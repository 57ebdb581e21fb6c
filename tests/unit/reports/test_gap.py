"""The report when runs are missing (a Ray study whose tasks failed): who is named, what is
compared on which seeds, and where no verdict may be given."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save
from scipy import stats

from pipeline.core.config import Params
from pipeline.core.errors import DataError
from pipeline.core.paths import Layout
from pipeline.core.records import MissingRun, RunRecord
from pipeline.core.spec import run_specs
from pipeline.data.prepared import Pool, write_pool
from pipeline.outputs.variant_files import VariantRuns, write_variant
from pipeline.reports import gap as gap_report
from pipeline.reports import gap_sentences
from pipeline.stages import report as report_stage
from tests.support.repo import TINY_PARAMS

SEEDS = [0, 1, 2]
PARAMS = {
    **TINY_PARAMS,
    "train": {**TINY_PARAMS["train"], "seeds": SEEDS},
    "variants": {
        "baseline": {},
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


def record(params: Params, name: str, seed: int, best: float) -> RunRecord:
    """A finished run with made-up numbers, as a train stage hands it to the outputs."""
    [spec] = run_specs(params, name, [seed])
    summary = {
        "best_val_loss": best,
        "best_val_accuracy": 0.9,
        "best_epoch": 3.0,
        "train_loss_last": 0.1,
        "val_loss_last": best + 0.05,
        "loss_gap_last": best - 0.05,
        "accuracy_gap_last": 0.02,
        "loss_gap_best": best - 0.1,
        "accuracy_gap_best": 0.01,
        "test_loss": 0.3,
        "test_accuracy": 0.9,
        "near_zero_fraction": 0.0,
        "weight_norm": 1.0,
    }
    epoch = {
        "train_loss": 0.1,
        "val_loss": best,
        "loss_gap": best - 0.1,
        "train_accuracy": 0.99,
        "val_accuracy": 0.9,
    }
    weights = save({"0.weight": np.full((4, 3), 0.1, np.float32)})
    return RunRecord(
        name,
        seed,
        spec.hyperparameters(),
        "cpu",
        False,
        summary,
        [epoch] * 4,
        model_files={"model.safetensors": weights},
    )


def write_prepared_meta(layout: Layout) -> None:
    meta = {
        "dataset": "digits",
        "pool_size": 20,
        "sizes": {"train": 10, "val": 5, "test": 5},
        "label_noise": 0.0,
        "n_features": 3,
        "n_classes": 2,
        "splits": "per_seed",
    }
    write_pool(Pool(np.zeros((20, 3), np.float32), np.arange(20) % 2, meta), layout.prepared)


def missing_entry(variant: str, seed: int, diverged: bool) -> MissingRun:
    reason = "TrainingDiverged: training diverged at epoch 2" if diverged else "its worker died"
    return MissingRun(variant, seed, f"{variant}-seed{seed}", reason, diverged)


@pytest.fixture
def report(tmp_path: Path) -> tuple[dict, str]:
    params = Params.model_validate(yaml.safe_load(yaml.safe_dump(PARAMS)))
    layout = Layout(tmp_path)
    write_prepared_meta(layout)
    missing = {
        "diverging": [missing_entry("diverging", 2, diverged=True)],
        "lost_one": [missing_entry("lost_one", 1, diverged=False)],
        # A stale record beside a complete variant (as `dvc checkout` of its stage leaves it).
        "complete": [missing_entry("complete", 0, diverged=False)],
    }
    for name, best in BEST_VAL.items():
        records = [record(params, name, seed, value) for seed, value in best.items()]
        write_variant(layout, name, records, missing.get(name, []))
    report_stage.report(params, layout, log=False, join=False)
    return json.loads(layout.summary.read_text()), layout.gap_report.read_text()


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


def test_the_dvc_metrics_are_one_number_per_variant(
    report: tuple[dict, str], tmp_path: Path
) -> None:
    headline = json.loads(Layout(tmp_path).headline.read_text())
    assert list(headline) == ["gap"]
    assert set(headline["gap"]) == set(PARAMS["variants"])
    # The baseline's records have gaps 0.05 below their best val losses 0.50, 0.52, 0.51.
    assert headline["gap"]["baseline"] == pytest.approx(0.46)


def test_a_variant_equal_to_the_baseline_on_every_seed_is_identical_not_equivalent(
    report: tuple[dict, str],
) -> None:
    summary, text = report
    complete = summary["variants"]["complete"]["vs_baseline"]
    assert {c["verdict"] for c in complete.values()} == {"identical on every seed"}
    rows = [line for line in text.splitlines() if line.startswith("| complete |")]
    change = rows[1]  # the tables: means, change against the baseline, best epoch
    assert "0 on every seed" in change and "equivalent" not in change


def test_every_verdict_can_be_recomputed_from_the_per_seed_file(
    report: tuple[dict, str], tmp_path: Path
) -> None:
    summary, _ = report
    with Layout(tmp_path).per_seed.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["variant"], int(r["seed"])) for r in rows} == {
        (name, seed) for name, best in BEST_VAL.items() for seed in best
    }
    value = {(r["variant"], int(r["seed"])): float(r["best_val_loss"]) for r in rows}
    d = np.array([value["lost_one", s] - value["baseline", s] for s in (0, 2)])
    # 3 comparisons on each of the table's 3 measures share α = 0.05: one look at α/9.
    low, high = stats.t.interval(1 - 0.05 / 9, 1, loc=d.mean(), scale=stats.sem(d))
    lost = summary["variants"]["lost_one"]["vs_baseline"]["best_val_loss"]
    assert (lost["low"], lost["high"]) == pytest.approx((low, high))


def test_the_report_shows_its_verdicts_as_a_forest_plot(
    report: tuple[dict, str], tmp_path: Path
) -> None:
    _, text = report
    assert (Layout(tmp_path).figures / "verdicts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Verdicts: each change with its interval](figures/verdicts.png)" in text


def test_the_report_without_prepared_data_says_so_and_writes_nothing(tmp_path: Path) -> None:
    params = Params.model_validate(yaml.safe_load(yaml.safe_dump(PARAMS)))
    layout = Layout(tmp_path)
    for name, best in BEST_VAL.items():
        records = [record(params, name, seed, value) for seed, value in best.items()]
        write_variant(layout, name, records)
    with pytest.raises(DataError, match=r"no prepared data \(meta\.json missing\)"):
        report_stage.report(params, layout, log=False, join=False)
    assert not layout.gap_report.exists() and not layout.summary.exists()
    assert not layout.figures.exists()


def test_a_gap_closed_past_zero_is_named_so(tmp_path: Path) -> None:
    """Under label noise a variant's val loss can end below its train loss: the report says
    the gap went past zero, not that it closed more than 100 % of the baseline's."""
    raw = {**PARAMS, "variants": {"baseline": {}, "noisy": {"l2": 0.01}}}
    params = Params.model_validate(yaml.safe_load(yaml.safe_dump(raw)))
    layout = Layout(tmp_path)
    write_prepared_meta(layout)
    gaps = {"baseline": [0.30, 0.31, 0.29], "noisy": [-0.10, -0.12, -0.11]}
    for name, values in gaps.items():
        records = []
        for seed, gap in enumerate(values):
            r = record(params, name, seed, 0.5)
            r.summary["loss_gap_last"] = gap
            records.append(r)
        write_variant(layout, name, records, [])
    report_stage.report(params, layout, log=False, join=False)
    [line] = [x for x in layout.gap_report.read_text().splitlines() if x.startswith("- **noisy**")]
    assert "closes the gap by 0.410, past zero: its val loss is 0.110 below its train loss" in line
    assert "of the baseline's gap" not in line


def test_the_conditions_name_the_processors_of_the_runs(
    report: tuple[dict, str], tmp_path: Path
) -> None:
    """Each distinct processor the report's runs were made on, sorted; a record from before
    processors were kept adds none."""
    summary, text = report  # records that name no processor
    assert summary["conditions"]["processor"] == []
    assert "device cpu, torch " in text
    raw = {**PARAMS, "variants": {"baseline": {}, "l2": {"l2": 0.01}}}
    params = Params.model_validate(yaml.safe_load(yaml.safe_dump(raw)))
    layout = Layout(tmp_path / "other")
    write_prepared_meta(layout)
    made_on = {
        "baseline": ["Zen CPU @ 3.0GHz", "", "Zen CPU @ 3.0GHz"],
        "l2": ["Xeon CPU @ 2.1GHz", "Zen CPU @ 3.0GHz", "Xeon CPU @ 2.1GHz"],
    }
    for name, processors in made_on.items():
        records = [
            dataclasses.replace(record(params, name, seed, 0.5 + seed / 100), processor=p)
            for seed, p in enumerate(processors)
        ]
        write_variant(layout, name, records, [])
    report_stage.report(params, layout, log=False, join=False)
    conditions = json.loads(layout.summary.read_text())["conditions"]
    assert conditions["processor"] == ["Xeon CPU @ 2.1GHz", "Zen CPU @ 3.0GHz"]
    assert (
        "device cpu, processors Xeon CPU @ 2.1GHz and Zen CPU @ 3.0GHz, torch "
        in layout.gap_report.read_text()
    )


def test_the_report_says_what_the_pairing_by_seed_buys() -> None:
    """The correlation of variant and baseline over paired seeds, per measure, averaged over the
    variants where it exists: a variant equal to the baseline, or with fewer than 3 paired
    seeds, or a measure that does not vary, has none."""
    params = Params.model_validate(yaml.safe_load(yaml.safe_dump(PARAMS)))
    base = {0: 0.50, 1: 0.52, 2: 0.51, 3: 0.55}
    paired = {0: 0.45, 1: 0.48, 2: 0.44, 3: 0.49}
    other = {0: 0.41, 1: 0.40, 2: 0.43, 3: 0.47}
    runs = [
        VariantRuns(name, [record(params, "baseline", s, v) for s, v in values.items()])
        for name, values in [("baseline", base), ("a", paired), ("b", other), ("same", base)]
    ]
    runs.append(VariantRuns("short", [record(params, "baseline", s, base[s]) for s in (0, 1)]))
    found = gap_report.pairing(runs, "baseline")
    expected = np.mean(
        [np.corrcoef(list(v.values()), list(base.values()))[0, 1] for v in (paired, other)]
    )
    assert found["best_val_loss"] == pytest.approx(expected)
    assert found["loss_gap_last"] == pytest.approx(expected)  # best − 0.05: the same r
    assert found["test_accuracy"] is None  # 0.9 on every run: nothing varies
    assert "variant–baseline correlation over seeds" in gap_sentences.pairing_text(found)
