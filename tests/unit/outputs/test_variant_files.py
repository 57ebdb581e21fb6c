"""The contract between the stages: a finished run's record, and the files the outputs module
writes from it and reads back."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save

from pipeline.core.errors import DataError
from pipeline.core.files import files_into
from pipeline.core.loading import parse_params
from pipeline.core.metrics import CURVES, VARIANT_SUMMARY
from pipeline.core.paths import Layout
from pipeline.core.records import MissingRun, RunRecord
from pipeline.core.spec import run_specs
from pipeline.executors.checkpoint import load_checkpoint, save_checkpoint
from pipeline.outputs import sweep_files, variant_files
from pipeline.training.stack_training import EPOCH_METRICS

PARAMS = parse_params(
    {
        "model": {"hidden_sizes": [4]},
        "train": {"epochs": 2, "seeds": [0, 1]},
        "variants": {"baseline": {}, "l2": {"l2": 0.01}},
    }
)


def record(seed: int, name: str = "l2") -> RunRecord:
    [spec] = run_specs(PARAMS, name, [seed])
    # Every per-epoch metric the trainer logs but its seconds; every summary value.
    keys = [k for k in EPOCH_METRICS if k != "epoch_seconds"]
    history = [{k: (i + 1) / (epoch + seed + 2) for i, k in enumerate(keys)} for epoch in (0, 1)]
    summary = dict.fromkeys(VARIANT_SUMMARY, 0.5) | {"test_accuracy": 0.75 + seed / 100}
    weights = save({"0.weight": np.arange(12, dtype=np.float32).reshape(4, 3) * (seed + 1)})
    return RunRecord(
        name,
        seed,
        spec.hyperparameters(),
        "cpu",
        False,
        summary,
        history,
        run_id=f"run{seed}",
        epoch_seconds=[0.25, 0.5],
        model_files={"model.safetensors": weights, "architecture.json": b"{}\n"},
    )


def history_keys() -> list[str]:
    return [k for k in EPOCH_METRICS if k != "epoch_seconds"]


def test_a_record_round_trips_through_its_json_and_its_checkpoint(tmp_path: Path) -> None:
    original = record(1)
    entry = json.loads(json.dumps(original.to_json()))
    back = RunRecord.from_json(entry, original.history)
    assert back.to_json() == original.to_json() and back.history == original.history
    assert "run_id" not in entry and "train_seconds" not in json.dumps(entry)
    assert original.provenance() == {
        "run_name": "l2-seed1",
        "run_id": "run1",
        "train_seconds": 0.75,
        "epoch_seconds": [0.25, 0.5],
    }
    # The finished run a checkpoint keeps for --resume: plain data, loadable weights-only.
    save_checkpoint(tmp_path / "c.pt", {"fingerprint": "f", "finished": original.to_checkpoint()})
    resumed = RunRecord.from_checkpoint(load_checkpoint(tmp_path / "c.pt")["finished"])
    assert resumed == original


def test_a_record_keeps_its_processor_and_a_runs_json_without_one_loads(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    records = [dataclasses.replace(record(s), processor="Test CPU @ 1.00GHz") for s in (0, 1)]
    variant_files.write_variant(layout, "l2", records)
    runs_json = layout.metrics("l2") / "runs.json"
    entries = json.loads(runs_json.read_text())
    assert [e["processor"] for e in entries] == ["Test CPU @ 1.00GHz"] * 2
    read = variant_files.read_variant(layout, PARAMS, "l2")
    assert [r.processor for r in read.records] == ["Test CPU @ 1.00GHz"] * 2
    assert "processor" not in records[0].provenance()  # in runs.json, not in logs/
    save_checkpoint(tmp_path / "c.pt", {"fingerprint": "f", "finished": records[0].to_checkpoint()})
    assert RunRecord.from_checkpoint(load_checkpoint(tmp_path / "c.pt")["finished"]) == records[0]
    # runs.json as written before processors were kept
    runs_json.write_text(
        json.dumps([{k: v for k, v in e.items() if k != "processor"} for e in entries])
    )
    read = variant_files.read_variant(layout, PARAMS, "l2")
    assert [r.processor for r in read.records] == ["", ""]
    assert [r.summary for r in read.records] == [r.summary for r in records]


def test_the_written_outputs_hold_results_and_read_back(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    records = [record(0), record(1)]
    variant_files.write_variant(layout, "l2", records)
    folder = layout.metrics("l2")
    assert sorted(p.name for p in folder.iterdir()) == [
        "curves.csv",
        "history.csv",
        "runs.json",
        "summary.json",
    ]
    hashed = "".join(p.read_text() for p in folder.iterdir())
    assert "run0" not in hashed and "seconds" not in hashed
    # history.csv: one row per (seed, epoch); curves.csv: the means over seeds, per epoch.
    lines = (folder / "history.csv").read_text().splitlines()
    assert lines[0] == ",".join(["variant", "seed", "epoch", *history_keys()])
    assert len(lines) == 1 + 4
    curves = (folder / "curves.csv").read_text().splitlines()
    assert curves[0] == "epoch,n_seeds," + ",".join(CURVES) and len(curves) == 1 + 2
    first = dict(zip(curves[0].split(","), curves[1].split(","), strict=True))
    # epoch 1 of seeds 0 and 1: (i + 1) / 2 and (i + 1) / 3 for the i-th metric, averaged
    i = history_keys().index("val_loss")
    assert float(first["val_loss"]) == pytest.approx(((i + 1) / 2 + (i + 1) / 3) / 2)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_seeds"] == 2 and summary["test_accuracy"] == pytest.approx(0.755)
    for seed in (0, 1):
        files = layout.model_folder("l2", seed)
        assert (files / "model.safetensors").read_bytes() == records[seed].model_files[
            "model.safetensors"
        ]
    weights = variant_files.read_weights(layout, "l2", 1)
    assert np.array_equal(weights["0.weight"], np.arange(12).reshape(4, 3) * 2)
    # What is not a result is in logs/, not hashed.
    log = json.loads(layout.run_log("l2").read_text())
    assert [e["run_id"] for e in log] == ["run0", "run1"]

    read = variant_files.read_variant(layout, PARAMS, "l2")
    assert [r.to_json() for r in read.records] == [r.to_json() for r in records]
    assert [r.history for r in read.records] == [r.history for r in records]
    assert read.missing == [] and read.mean_sd("test_accuracy")[0] == pytest.approx(0.755)


def test_runs_trained_with_other_settings_are_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    variant_files.write_variant(layout, "l2", [record(0)])
    edited = parse_params({**PARAMS.model_dump(), "variants": {"baseline": {}, "l2": {"l2": 0.02}}})
    with pytest.raises(DataError, match="seed 0 was trained with other settings"):
        variant_files.read_variant(layout, edited, "l2")


def test_runs_that_did_not_finish_are_kept_beside_those_that_did(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    lost = MissingRun("l2", 1, "l2-seed1", "its worker died")
    variant_files.write_variant(layout, "l2", [record(0)], [lost])
    read = variant_files.read_variant(layout, PARAMS, "l2")
    assert [r.seed for r in read.records] == [0] and read.missing == [lost]
    # Every run failed: no results, but the variant is still named.
    gone = MissingRun("baseline", 0, "baseline-seed0", "diverged", diverged=True)
    variant_files.write_variant(layout, "baseline", [], [gone])
    read = variant_files.read_variant(layout, PARAMS, "baseline")
    assert read.records == [] and read.diverged_seeds == [0]


def test_a_weights_file_is_plain_safetensors(tmp_path: Path) -> None:
    """The models folder holds what the record carried, byte for byte: loadable with
    safetensors alone, without unpickling anything."""
    from safetensors.torch import load_file

    layout = Layout(tmp_path)
    variant_files.write_variant(layout, "l2", [record(0)])
    state = load_file(layout.model_folder("l2", 0) / "model.safetensors")
    assert torch.equal(state["0.weight"], torch.arange(12.0).reshape(4, 3))


def test_sweep_points_read_back_and_files_that_are_not_points_are_named(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    folder = layout.sweep_point("l2", 0.01)
    written = sweep_files.write_sweep_point(layout, folder, "l2", 0.01, [record(1), record(2)])
    assert written == [folder / "seed1.json", folder / "seed2.json"]
    # Left by older versions or by hand: not JSON, and a point of another shape.
    (layout.sweeps / "l2" / "notes.json").write_text("not json")
    (layout.sweeps / "l2" / "0.1").mkdir()
    (layout.sweeps / "l2" / "0.1" / "seed0.json").write_text('{"strength": 0.1, "seed": 0}')
    points, unreadable = sweep_files.read_sweep_points(layout)
    assert list(points) == [("l2", 0.01, 1), ("l2", 0.01, 2)]
    assert points["l2", 0.01, 1].to_json() == record(1).to_json()
    assert points["l2", 0.01, 1].history == record(1).history
    assert sorted(p.relative_to(layout.sweeps).as_posix() for p in unreadable) == [
        "l2/0.1/seed0.json",
        "l2/notes.json",
    ]
    # Its MLflow run and seconds: in logs/ (not hashed); beside a point written elsewhere.
    log = tmp_path / "logs" / "sweeps" / "l2" / "0.01" / "seed1.json"
    assert json.loads(log.read_text())["run_id"] == "run1"
    elsewhere = tmp_path / "mine"
    sweep_files.write_sweep_point(layout, elsewhere, "l2", 0.01, [record(0)])
    assert json.loads((elsewhere / "seed0.log.json").read_text())["run_id"] == "run0"


def test_the_outputs_do_not_depend_on_the_order_the_runs_finished_in(tmp_path: Path) -> None:
    def written(order: list[int], root: Path) -> dict[str, bytes]:
        root.mkdir()
        layout = Layout(root)
        missing = [MissingRun("l2", s, f"l2-seed{s}", "lost") for s in (5, 4)]
        variant_files.write_variant(
            layout, "l2", [record(s) for s in order], missing[:: order[0] or -1]
        )
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "logs" not in p.parts
        }

    assert written([0, 1], tmp_path / "a") == written([1, 0], tmp_path / "b")


def test_a_report_folder_gets_its_own_files_and_keeps_everything_else(tmp_path: Path) -> None:
    target = tmp_path / "reports"
    target.mkdir()
    (target / "mine.txt").write_text("a user's file\n")
    (target / "report.md").write_text("old report\n")
    with files_into(target) as staging:
        (staging / "report.md").write_text("new report\n")
        (staging / "figure.png").write_bytes(b"png")
    assert (target / "mine.txt").read_text() == "a user's file\n"
    assert (target / "report.md").read_text() == "new report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]  # no staging left

    with pytest.raises(RuntimeError), files_into(target) as staging:
        (staging / "report.md").write_text("half\n")
        raise RuntimeError("drawing failed")
    assert (target / "report.md").read_text() == "new report\n"
    assert sorted(p.name for p in target.iterdir()) == ["figure.png", "mine.txt", "report.md"]
