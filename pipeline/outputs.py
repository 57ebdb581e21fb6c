"""The only reader and writer of the stages' outputs: `models/`, `metrics/` and `sweeps/`.

Per variant, written in one step each once every run has finished, so DVC never takes a
half-written folder for a result:
- `models/<variant>/seed<k>/`: `model.safetensors` and `architecture.json` (best-epoch weights);
- `metrics/<variant>/history.csv`: one row per (seed, epoch);
- `metrics/<variant>/runs.json`: per seed, its hyperparameters and summary (`RunRecord`);
- `metrics/<variant>/summary.json` and `curves.csv`: means over seeds (`curves.csv`: a DVC plot);
- `metrics/<variant>/missing.json`: runs that did not finish (a Ray study only).
Per seed added in rounds (`rounds`): `rounds/<variant>/seed<k>/`, its record (history and
what it was trained with included) and kept weights; `rounds/rounds.json`, what the rounds did.
Per strength-path point: `sweeps/<technique>/<strength>/seed<k>.json`.

These hold results only. Each run's MLflow run id and seconds go to `logs/` (`Layout`), which
DVC does not hash: repeating the same training changes no hashed byte.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Params
from .errors import DataError
from .files import csv_text, json_text, replace_dir, write_atomic
from .metrics import CURVES, VARIANT_SUMMARY
from .paths import Layout
from .records import MissingRun, RunRecord
from .signals import signals_held
from .spec import run_specs


@dataclass(frozen=True)
class VariantRuns:
    """What the train stage (or a Ray study) left for one variant."""

    name: str
    records: list[RunRecord]  # the finished runs, by seed
    missing: list[MissingRun] = field(default_factory=list)

    @property
    def diverged_seeds(self) -> list[int]:
        return sorted(m.seed for m in self.missing if m.diverged)

    def per_seed(self, key: str) -> dict[int, float]:
        return {r.seed: float(r.summary[key]) for r in self.records}

    def mean_sd(self, key: str) -> tuple[float, float]:
        values = np.array(list(self.per_seed(key).values()))
        sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        return float(values.mean()), sd


def write_variant(
    layout: Layout,
    variant: str,
    records: Sequence[RunRecord],
    missing: Sequence[MissingRun] = (),
) -> None:
    """Swap in `models/<variant>/` and `metrics/<variant>/` from the variant's finished runs
    (each carrying its model files), and log their MLflow runs and timings. In seed order,
    whichever order the executor finished them in, so the same runs give the same bytes."""
    records = sorted(records, key=lambda r: r.seed)
    missing = sorted(missing, key=lambda m: m.seed)
    staging = Path(tempfile.mkdtemp(prefix=f"{layout.staging_prefix}{variant}-", dir=layout.root))
    try:
        models, metrics = staging / "models", staging / "metrics"
        for record in records:
            folder = models / f"seed{record.seed}"
            folder.mkdir(parents=True)
            for name, content in record.model_files.items():
                (folder / name).write_bytes(content)
        models.mkdir(exist_ok=True)
        metrics.mkdir()
        if records:
            history = [row for r in records for row in r.history_rows()]
            (metrics / "history.csv").write_text(csv_text(history))
            (metrics / "curves.csv").write_text(csv_text(mean_curves(history)))
            (metrics / "summary.json").write_text(json_text(seed_mean(records)))
        (metrics / "runs.json").write_text(json_text([r.to_json() for r in records]))
        if missing:
            (metrics / "missing.json").write_text(json_text([m.to_json() for m in missing]))
        for target in (layout.models(variant), layout.metrics(variant)):
            target.parent.mkdir(parents=True, exist_ok=True)
        with signals_held():  # both folders or neither: a signal waits for the two swaps
            replace_dir(models, layout.models(variant))
            replace_dir(metrics, layout.metrics(variant))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_atomic(layout.run_log(variant), json_text([r.provenance() for r in records]))


def mean_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per epoch, the mean over the seeds that reached it (early stopping ends seeds apart)."""
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_epoch.setdefault(row["epoch"], []).append(row)
    return [
        {
            "epoch": epoch,
            "n_seeds": len(group),
            **{k: float(np.mean([r[k] for r in group])) for k in CURVES},
        }
        for epoch, group in sorted(by_epoch.items())
    ]


def seed_mean(records: Sequence[RunRecord]) -> dict[str, Any]:
    """A variant's summary: each summary value's mean over seeds, and n."""
    means = {k: float(np.mean([r.summary[k] for r in records])) for k in VARIANT_SUMMARY}
    return {"n_seeds": len(records), **means}


def read_variant(
    layout: Layout, params: Params, name: str, added: Sequence[int] = ()
) -> VariantRuns:
    """A variant's finished runs (its train stage's, and the seeds `added` by the rounds) and,
    of the study's seeds, those that did not finish. Every run must have been trained with the
    settings params.yaml holds now: a report must not name a variant by settings its runs did
    not have."""
    seeds = params.train.seeds
    folder = layout.metrics(name)
    runs_path, history_path = folder / "runs.json", folder / "history.csv"
    missing_path = folder / "missing.json"
    entries = json.loads(runs_path.read_text()) if runs_path.is_file() else None
    missing = (
        [MissingRun.from_json(m) for m in json.loads(missing_path.read_text())]
        if (missing_path.is_file())
        else []
    )
    # missing.json is not a DVC output: after `dvc checkout` of a complete stage it may still
    # lie beside it. Only seeds of the study that have no finished run count as missing.
    finished = {int(e["seed"]) for e in entries or []}
    missing = [m for m in missing if m.seed in seeds and m.seed not in finished]
    if entries == [] and missing:  # every run of the variant failed
        return VariantRuns(name, [], missing)
    for path in (runs_path, history_path):
        if not path.is_file():
            raise DataError(
                f"{path}: missing; train the variant first (`python -m pipeline train "
                f"--variant {name}` or `dvc repro`)"
            )
    history = read_history(history_path)
    records = [RunRecord.from_json(e, history.get(int(e["seed"]), [])) for e in entries or []]
    stored = read_round_seeds(layout, name)
    for seed in added:
        if seed not in stored:
            raise DataError(
                f"{layout.round_seed(name, seed)}: missing; run the rounds again "
                "(`python -m pipeline rounds` or `dvc repro`)"
            )
        records.append(stored[seed][1])
    for record in records:
        [spec] = run_specs(params, name, [record.seed])
        if record.hyperparameters != spec.hyperparameters():
            raise DataError(
                f"{runs_path}: seed {record.seed} was trained with other settings than "
                f"params.yaml holds; train the variant again (`dvc repro`)"
            )
    return VariantRuns(name, records, missing)


def run_id_of(layout: Layout, variant: str, seed: int) -> str | None:
    """The MLflow run of a seed of `variant`, as the training that made its outputs here
    recorded it in `logs/`; None when these outputs were made elsewhere (a DVC cache)."""
    paths = (layout.round_log(variant, seed), layout.run_log(variant))
    for path in paths:
        if path.is_file():
            entries = json.loads(path.read_text())
            for entry in entries if isinstance(entries, list) else [entries]:
                if entry.get("run_name") == f"{variant}-seed{seed}" and entry.get("run_id"):
                    return str(entry["run_id"])
    return None


def read_history(path: Path) -> dict[int, list[dict[str, float]]]:
    """history.csv by seed: each epoch's row of results, in epoch order."""
    by_seed: dict[int, list[tuple[int, dict[str, float]]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            seed, epoch = int(row.pop("seed")), int(row.pop("epoch"))
            row.pop("variant")
            by_seed.setdefault(seed, []).append((epoch, {k: float(v) for k, v in row.items()}))
    return {
        seed: [r for _, r in sorted(rows, key=lambda x: x[0])] for seed, rows in by_seed.items()
    }


def read_weights(layout: Layout, variant: str, seed: int) -> dict[str, np.ndarray]:
    """A seed's kept weights, by parameter name (safetensors: nothing is unpickled), from its
    train stage or from the rounds."""
    from safetensors.numpy import load_file

    folder = layout.model_folder(variant, seed)
    if not folder.is_dir():
        folder = layout.round_seed(variant, seed)
    return load_file(folder / "model.safetensors")


# --- seeds added in rounds ----------------------------------------------------------------------


def write_round_seed(layout: Layout, record: RunRecord, made_with: str) -> None:
    """A seed the rounds added: `rounds/<variant>/seed<k>/` swapped in whole, with its record,
    its history and `made_with` (what decides whether a later run of the rounds may reuse it),
    and its kept weights. Written as soon as it has trained: an interrupted round keeps it."""
    target = layout.round_seed(record.variant, record.seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        entry = {**record.to_json(), "history": record.history, "made_with": made_with}
        (staging / "record.json").write_text(json_text(entry, indent=1))
        for name, content in record.model_files.items():
            (staging / name).write_bytes(content)
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_atomic(layout.round_log(record.variant, record.seed), json_text(record.provenance()))


def read_round_seeds(layout: Layout, variant: str) -> dict[int, tuple[str, RunRecord]]:
    """The seeds the rounds have added to `variant`: seed -> (made_with, record)."""
    found = {}
    for path in sorted(layout.round_seeds(variant).glob("seed*/record.json")):
        entry = json.loads(path.read_text())
        found[int(entry["seed"])] = (
            str(entry["made_with"]),
            RunRecord.from_json(entry, entry["history"]),
        )
    return found


def write_rounds(layout: Layout, record: dict[str, Any], kept: dict[str, Sequence[int]]) -> None:
    """`rounds/rounds.json`; and of the seeds stored under `rounds/`, only those `kept` (by
    variant) stay, so that the folder holds what the report reads and nothing else."""
    for folder in sorted(layout.rounds.glob("*/*")) if layout.rounds.is_dir() else []:
        variant, seed = folder.parent.name, folder.name.removeprefix("seed")
        if not (seed.isdigit() and int(seed) in kept.get(variant, ())):
            shutil.rmtree(folder)  # a seed no longer used, or what an interrupt left
    for folder in sorted(layout.rounds.glob("*/")) if layout.rounds.is_dir() else []:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    write_atomic(layout.rounds_record, json_text(record))


def read_rounds(layout: Layout) -> dict[str, Any] | None:
    """What `write_rounds` wrote, or None before the rounds have run."""
    path = layout.rounds_record
    return json.loads(path.read_text()) if path.is_file() else None


# --- strength paths ---------------------------------------------------------------------------


def write_sweep_point(
    layout: Layout, folder: Path, technique: str, strength: float, records: list[RunRecord]
) -> list[Path]:
    """One point of a strength path: each seed's record (with its history) in `folder`, as
    `seed<k>.json`. Returns the files."""
    paths = []
    for record in records:
        point = {
            "technique": technique,
            "strength": strength,
            **record.to_json(),
            "history": record.history,
        }
        path = folder / f"seed{record.seed}.json"
        write_atomic(path, json_text(point, indent=1))
        write_atomic(layout.sweep_log(path), json_text(record.provenance()))
        paths.append(path)
    return paths


def read_sweep_points(
    layout: Layout,
) -> tuple[dict[tuple[str, float, int], RunRecord], list[Path]]:
    """Every point under sweeps/, by (technique, strength, seed): the newest file wins. Files
    of strengths no longer in params.yaml stay there and are left out by the caller; so are
    files that are not points (returned apart, for the caller to name)."""
    found: dict[tuple[str, float, int], tuple[float, RunRecord]] = {}
    unreadable = []
    for path in sorted(layout.sweeps.rglob("*.json")):
        try:
            point = json.loads(path.read_text())
            key = (str(point["technique"]), float(point["strength"]), int(point["seed"]))
            record = RunRecord.from_json(point, point["history"])
        except (ValueError, KeyError, TypeError):  # JSONDecodeError is a ValueError
            unreadable.append(path)
            continue
        mtime = path.stat().st_mtime
        if key not in found or found[key][0] < mtime:
            found[key] = (mtime, record)
    return {key: record for key, (_, record) in found.items()}, unreadable
